"""SimNPO: reference-free NPO on length-normalised log-probabilities (Fan et al. 2024, arXiv 2410.07163)."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, answer_logprobs, example_mean, register, tuned_lr


@register
class SimNPO(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(-beta log p_theta(y|x) / |y| - gamma) + alpha R."""

    name = "simnpo"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(1e-3)
        beta: float = Field(2.5, gt=0, description="inverse temperature (divides the loss)")
        gamma: float = Field(0.0, ge=0, description="reward margin")

    def forget_loss(self, step):
        logp, count = answer_logprobs(step.logits("forget"), step.labels("forget"))
        mean_logp = logp / count.clamp(min=1)
        simnpo = -(2.0 / self.beta) * example_mean(F.logsigmoid(-self.beta * mean_logp - self.gamma))
        return simnpo, {"simnpo_loss": simnpo.item(), "forget_mean_logp": mean_logp.mean().item()}
