"""Weighted gradient ascent (WGA, Wang et al. 2025, "Rethinking LLM Unlearning Objectives",
arXiv 2502.19301): ascent where each answer token is weighted by its own probability, so
tokens already forgotten stop being pushed."""
from typing import Optional

from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, answer_token_logprobs, masked_mean, register, tuned_lr


@register
class WeightedGradientAscent(UnlearningMethod):
    """L = -mean_t [sg(p_t^beta) * CE_t] over forget answer tokens + alpha R,
    p_t = p_theta(y_t|x, y_<t), CE_t = -log p_t, sg = stop-gradient."""

    name = "wga"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        beta: float = Field(1.0, ge=0, description="exponent of the token-probability weight")

    def forget_loss(self, step):
        logp, mask = answer_token_logprobs(step.logits("forget"), step.labels("forget"))
        weight = logp.detach().exp() ** self.beta
        wga = masked_mean(weight * logp, mask)
        return wga, {"wga_loss": wga.item()}
