"""DPO with a refusal preferred over the forget answer (TOFU's `idk` + DPO, Maini et al. 2024;
DPO: Rafailov et al. 2023, arXiv 2305.18290)."""
import torch.nn.functional as F

from .base import UnlearningMethod, answer_logprobs, forward_logits, register, token_mean_nll


@register
class IdkDPO(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(beta [(log p_theta(idk|x) - log p_ref(idk|x))
                                         - (log p_theta(y|x) - log p_ref(y|x))]) + alpha NLL_r.

    Log-probabilities are summed over answer tokens. The 2/beta scale (as in NPO) makes the
    gradient at the start equal to that of the plain log-probability difference, so learning
    rates carry over between methods.
    """

    name = "idk_dpo"
    forward_views = ("forget", "forget_idk", "retain")
    needs_reference = True
    views = ("forget_idk",)

    def loss(self, model, batch, reference):
        f, idk, r = batch["forget"], batch["forget_idk"], batch["retain"]
        lose = answer_logprobs(forward_logits(model, f), f["labels"])[0] - answer_logprobs(reference.logits(f), f["labels"])[0]
        win = answer_logprobs(forward_logits(model, idk), idk["labels"])[0] - answer_logprobs(reference.logits(idk), idk["labels"])[0]
        dpo = -(2.0 / self.beta) * F.logsigmoid(self.beta * (win - lose)).mean()
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = dpo + self.alpha * nll_r
        return loss, {"dpo_loss": dpo.item(), "margin": (win - lose).mean().item(), "retain_nll": nll_r.item()}
