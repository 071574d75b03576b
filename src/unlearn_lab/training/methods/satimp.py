"""SatImp (Yang et al. 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning",
arXiv 2505.11953): ascent weighted by p^beta1 (1-p)^beta2, which favours tokens that are
likely but not yet saturated."""
from typing import Optional

from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, answer_token_logprobs, masked_mean, register, tuned_lr, weight


@register
class SatImp(UnlearningMethod):
    """L = -mean_t [sg(p_t^beta1 (1 - p_t)^beta2) * CE_t] over forget answer tokens + alpha R."""

    name = "satimp"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(2.5e-3)
        alpha: float = weight(0.1)
        beta1: float = Field(5.0, ge=0, description="exponent of p_t")
        beta2: float = Field(1.0, ge=0, description="exponent of 1 - p_t")

    def forget_loss(self, step):
        logp, mask = answer_token_logprobs(step.logits("forget"), step.labels("forget"))
        p = logp.detach().exp()
        weight = p ** self.beta1 * (1 - p) ** self.beta2
        satimp = masked_mean(weight * logp, mask)
        return satimp, {"satimp_loss": satimp.item()}
