"""Random-label fine-tuning: learn a wrong answer to each forget question (TOFU-style baseline;
Yao et al. 2023, arXiv 2310.10683). Wrong answers come from the `random_labels` stage."""
from typing import Optional

from .base import RetainKnobs, UnlearningMethod, register, token_mean_nll, tuned_lr, weight


@register
class RandomLabel(UnlearningMethod):
    """L = NLL(x_f -> y_wrong) + alpha R (alpha 0 by default: the plain method, no retain forward)."""

    name = "random_label"
    views = ("forget_wrong",)
    forward_views = ("forget_wrong",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        alpha: float = weight(0.0)

    def forget_loss(self, step):
        nll_wrong = token_mean_nll(step.logits("forget_wrong"), step.labels("forget_wrong"))
        return nll_wrong, {"wrong_answer_nll": nll_wrong.item()}
