"""SatImp (Yang et al. 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning",
arXiv 2505.11953): ascent weighted by p^beta1 (1-p)^beta2, which favours tokens that are
likely but not yet saturated."""
from .base import UnlearningMethod, answer_token_logprobs, forward_logits, register, token_mean_nll


@register
class SatImp(UnlearningMethod):
    """L = -mean_t [sg(p_t^beta1 (1 - p_t)^beta2) * CE_t] over forget answer tokens + alpha NLL_r."""

    name = "satimp"
    forward_views = ("forget", "retain")

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        logp, mask = answer_token_logprobs(forward_logits(model, f), f["labels"])
        p = logp.detach().exp()
        weight = p ** self.beta1 * (1 - p) ** self.beta2
        satimp = (weight * logp * mask).sum() / mask.sum().clamp(min=1)
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = satimp + self.alpha * nll_r
        return loss, {"satimp_loss": satimp.item(), "retain_nll": nll_r.item()}
