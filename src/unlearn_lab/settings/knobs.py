"""`methods.<name>`: each unlearning method's knobs, typed and bounded, with their defaults.

The losses live in methods/<name>.py (which import torch); the knobs live here so that every
stage can check them in milliseconds, and a bad knob fails the first stage that runs instead of
the unlearning step after both fine-tunes. tests/test_settings.py checks that the two registries
name the same methods.
"""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from .base import Section
from .sections import _regex


def weight(default: float, what: str = "weight of the retain term"):
    return Field(default, ge=0, description=what)


def tuned_lr(default: float):
    """The method's learning rate on the embedded benchmark (used while the top-level lr is null)."""
    return Field(default, gt=0, description="default learning rate (when the top-level lr is null)")


class Knobs(Section):
    """What every method has: its tuned default learning rate and an optional trainable regex."""

    lr: Optional[float] = Field(None, gt=0, description="default learning rate (when the top-level lr is null)")
    trainable: Optional[str] = Field(None, description="regex over weight names that may train")

    _trainable = field_validator("trainable")(classmethod(lambda cls, v: _regex(v)))

    def loss_knobs(self) -> dict:
        """The knobs the loss reads (everything but lr and trainable), as plain values."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in Knobs.model_fields}


class Ga(Knobs):
    lr: Optional[float] = tuned_lr(4e-4)


class Gd(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    gamma: float = weight(1.0, "weight of the forget term")
    alpha: float = weight(1.0)


class GaKl(Gd):
    lr: Optional[float] = tuned_lr(6e-4)


class Npo(Knobs):
    lr: Optional[float] = tuned_lr(2.5e-4)
    beta: float = Field(0.1, gt=0, description="inverse temperature (divides the loss)")
    alpha: float = weight(1.0)


class SimNpo(Knobs):
    lr: Optional[float] = tuned_lr(1e-3)
    beta: float = Field(2.5, gt=0, description="inverse temperature (divides the loss)")
    gamma: float = Field(0.0, ge=0, description="reward margin")
    alpha: float = weight(1.0)


class IdkDpo(Npo):
    lr: Optional[float] = tuned_lr(2e-4)


class IdkAp(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    beta: float = Field(0.1, gt=0, description="inverse temperature of the preference term")
    alpha: float = weight(1.0)


class MeGd(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    gamma: float = weight(0.1, "weight of the entropy (KL to uniform) term")
    alpha: float = weight(1.0)


class Rmu(Knobs):
    lr: Optional[float] = tuned_lr(1e-2)
    layer: int = Field(7, ge=0, description="decoder layer (0-based) whose activations are steered")
    steering_coeff: float = Field(300.0, gt=0, description="norm c of the random control vector")
    alpha: float = weight(100.0)
    vector_seed: int = Field(0, ge=0, description="seed of the random direction")


class RandomLabel(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    alpha: float = weight(0.0)


class Weighted(Knobs):
    lr: Optional[float] = tuned_lr(1e-3)
    # Signed by design: forget examples get a negative weight (see methods/weighted.py).
    forget_weight: float = Field(-1.0, description="loss weight of forget examples (signed)")
    retain_weight: float = Field(2.0, description="loss weight of retain examples (signed)")


class Wga(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    beta: float = Field(1.0, ge=0, description="exponent of the token-probability weight")
    alpha: float = weight(1.0)


class SatImp(Knobs):
    lr: Optional[float] = tuned_lr(2.5e-3)
    beta1: float = Field(5.0, ge=0, description="exponent of p_t")
    beta2: float = Field(1.0, ge=0, description="exponent of 1 - p_t")
    alpha: float = weight(0.1)


class Undial(Knobs):
    lr: Optional[float] = tuned_lr(5e-4)
    beta: float = Field(10.0, ge=0, description="logit subtracted from the true token in the target")
    alpha: float = weight(1.0)


KNOBS: dict[str, type[Knobs]] = {
    "ga": Ga, "gd": Gd, "ga_kl": GaKl, "npo": Npo, "simnpo": SimNpo, "idk_dpo": IdkDpo, "idk_ap": IdkAp,
    "me_gd": MeGd, "rmu": Rmu, "random_label": RandomLabel, "weighted": Weighted, "wga": Wga,
    "satimp": SatImp, "undial": Undial,
}


class Methods(Section):
    """One entry per method; a method left out keeps its defaults."""

    ga: Ga = Field(default_factory=Ga)
    gd: Gd = Field(default_factory=Gd)
    ga_kl: GaKl = Field(default_factory=GaKl)
    npo: Npo = Field(default_factory=Npo)
    simnpo: SimNpo = Field(default_factory=SimNpo)
    idk_dpo: IdkDpo = Field(default_factory=IdkDpo)
    idk_ap: IdkAp = Field(default_factory=IdkAp)
    me_gd: MeGd = Field(default_factory=MeGd)
    rmu: Rmu = Field(default_factory=Rmu)
    random_label: RandomLabel = Field(default_factory=RandomLabel)
    weighted: Weighted = Field(default_factory=Weighted)
    wga: Wga = Field(default_factory=Wga)
    satimp: SatImp = Field(default_factory=SatImp)
    undial: Undial = Field(default_factory=Undial)
