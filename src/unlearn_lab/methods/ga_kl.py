"""`ga_kl`: gradient ascent with a KL anchor on retain data (TOFU's `KL`, Maini et al. 2024,
arXiv 2401.06121) — gd with `retain: kl`, under its own name and tuned lr."""
from typing import Literal, Optional

from pydantic import Field

from .base import register, tuned_lr
from .gd import GradientDifference


@register
class GradientAscentKL(GradientDifference):
    """gd whose knobs default to retain: kl (an alias: methods.ga_kl in params.yaml)."""

    name = "ga_kl"

    class Knobs(GradientDifference.Knobs):
        lr: Optional[float] = tuned_lr(6e-4)
        retain: Literal["nll", "kl"] = Field("kl", description="the retain term (kl: TOFU's KL method)")
