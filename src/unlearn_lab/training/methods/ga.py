"""Gradient ascent: maximise the forget answers' NLL (Jang et al. 2023, arXiv 2210.01504; TOFU's `grad_ascent`)."""
from typing import Optional

from .base import Knobs, UnlearningMethod, register, token_mean_nll, tuned_lr


@register
class GradientAscent(UnlearningMethod):
    """L = -NLL_f (no retain term)."""

    name = "ga"
    shared_retain = False
    forward_views = ("forget",)

    class Knobs(Knobs):
        lr: Optional[float] = tuned_lr(4e-4)

    def forget_loss(self, step):
        nll_f = token_mean_nll(step.logits("forget"), step.labels("forget"))
        return -nll_f, {"forget_nll": nll_f.item()}
