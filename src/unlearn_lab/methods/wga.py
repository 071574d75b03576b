"""Weighted gradient ascent (WGA, Wang et al. 2025, "Rethinking LLM Unlearning Objectives",
arXiv 2502.19301): ascent where each answer token is weighted by its own probability, so
tokens already forgotten stop being pushed."""
from .base import UnlearningMethod, answer_token_logprobs, forward_logits, register, token_mean_nll


@register
class WeightedGradientAscent(UnlearningMethod):
    """L = -mean_t [sg(p_t^beta) * CE_t] over forget answer tokens + alpha NLL_r,
    p_t = p_theta(y_t|x, y_<t), CE_t = -log p_t, sg = stop-gradient."""

    name = "wga"
    forward_views = ("forget", "retain")

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        logp, mask = answer_token_logprobs(forward_logits(model, f), f["labels"])
        weight = logp.detach().exp() ** self.beta
        wga = (weight * logp * mask).sum() / mask.sum().clamp(min=1)
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = wga + self.alpha * nll_r
        return loss, {"wga_loss": wga.item(), "retain_nll": nll_r.item()}
