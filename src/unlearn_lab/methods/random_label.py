"""Random-label fine-tuning: learn a wrong answer to each forget question (TOFU-style baseline;
Yao et al. 2023, arXiv 2310.10683). Wrong answers come from the `random_labels` stage."""
from .base import UnlearningMethod, forward_logits, register, token_mean_nll


@register
class RandomLabel(UnlearningMethod):
    """L = NLL(x_f -> y_wrong) + alpha NLL_r (alpha 0 by default: the plain method)."""

    name = "random_label"
    views = ("forget_wrong",)

    def __init__(self, knobs):
        super().__init__(knobs)
        # the retain view is run only when its term counts
        self.forward_views = ("forget_wrong", "retain") if self.alpha else ()

    def loss(self, model, batch, reference):
        wrong, r = batch["forget_wrong"], batch["retain"]
        nll_wrong = token_mean_nll(forward_logits(model, wrong), wrong["labels"])
        parts = {"wrong_answer_nll": nll_wrong.item()}
        loss = nll_wrong
        if self.alpha:
            nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
            loss = loss + self.alpha * nll_r
            parts["retain_nll"] = nll_r.item()
        return loss, parts
