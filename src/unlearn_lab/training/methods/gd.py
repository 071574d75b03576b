"""Gradient difference: ascend on forget, descend on retain (Liu et al. 2022; TOFU's `grad_diff`).
With `retain: kl` it is TOFU's `KL` (Maini et al. 2024, arXiv 2401.06121; the `ga_kl` alias)."""
from typing import Optional

from .base import RetainKnobs, UnlearningMethod, register, token_mean_nll, tuned_lr, weight


@register
class GradientDifference(UnlearningMethod):
    """L = -gamma NLL_f + alpha R, R = NLL_r (`retain: nll`) or
    mean_t KL(p_ref(.|x_r, y_<t) || p_theta(.|x_r, y_<t)) (`retain: kl`, over the retain answer positions)."""

    name = "gd"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        gamma: float = weight(1.0, "weight of the forget term")

    def forget_loss(self, step):
        nll_f = token_mean_nll(step.logits("forget"), step.labels("forget"))
        return -self.gamma * nll_f, {"forget_nll": nll_f.item()}
