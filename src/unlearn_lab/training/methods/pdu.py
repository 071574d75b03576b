"""Primal-dual constrained unlearning (Entesari et al. 2025, arXiv 2506.05314)."""
from typing import Optional

from pydantic import Field

from .base import Knobs, UnlearningMethod, masked_mean, register, shifted, token_mean_nll, tuned_lr


@register
class PrimalDualUnlearning(UnlearningMethod):
    """min_theta F(theta) subject to NLL_r(theta) <= eps, by the Lagrangian
    L = F + lambda NLL_r with lambda <- max(0, lambda + dual_step (NLL_r - eps)) after every
    training step (dual ascent); F = mean over forget answer positions of
    (max_v z_t,v - mean_v z_t,v)^2, which flattens the logits towards no preference.

    The retain weight is not a constant to tune but what the constraint needs: it rises while the
    retain NLL is above `retain_eps` and decays to 0 below it. It is logged per step (`multiplier`).
    The flatness term is large (~900 on SmolLM2's 49k-token vocabulary) and the fine-tuned model's
    retain NLL small (~0.005), hence the tight default bound and the fast dual step: with
    eps 0.1 and step 1 the multiplier stayed at 0 and lr 5e-4 broke the retain answers.
    """

    name = "pdu"
    forward_views = ("forget", "retain")
    shared_retain = False

    class Knobs(Knobs):
        lr: Optional[float] = tuned_lr(3e-4)
        retain_eps: float = Field(0.02, ge=0, description="bound on the retain answers' NLL")
        dual_step: float = Field(300.0, gt=0, description="step size of the multiplier's dual ascent")
        multiplier: float = Field(1.0, ge=0, description="the multiplier's starting value")

    def forget_loss(self, step):
        logits, _, mask = shifted(step.logits("forget"), step.labels("forget"))
        gap = logits.max(-1).values - logits.mean(-1)
        flat = masked_mean(gap.square(), mask)
        nll_r = token_mean_nll(step.logits("retain"), step.labels("retain"))
        used = self.multiplier
        if step.model.training:
            # dual ascent on the constraint violation, after the multiplier has been used
            self.multiplier = max(0.0, used + self.dual_step * (nll_r.item() - self.retain_eps))
        return flat + used * nll_r, {"flatness": flat.item(), "retain_nll": nll_r.item(), "multiplier": used}
