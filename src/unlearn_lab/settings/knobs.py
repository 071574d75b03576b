"""`methods:` as far as every stage checks it: which method names exist, and the base every
method's knobs class derives from.

The knobs themselves (types, ranges, tuned learning rates) are declared next to each loss in
methods/<name>.py, and checked there (methods.check_knobs) by the unlearn stage before any
work and by the tools that read them. This package never imports unlearn_lab.training.methods (which
imports torch, and which every stage would then depend on): the method names are the module
names in that folder, read from a directory listing.
"""
from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any, Dict, Optional

from pydantic import Field, create_model, field_validator

from .base import Section
from .sections import MAX_LR, MAX_SCALE, _regex

METHODS_DIR = Path(__file__).resolve().parents[1] / "training" / "methods"
# Modules of the methods folder that hold shared code, not a method.
SHARED_MODULES = ("base", "names")


def method_names() -> list[str]:
    """Every method name (aliases included), sorted: the modules of unlearn_lab/training/methods/ other than
    the shared ones and those starting with an underscore."""
    return sorted(m.name for m in pkgutil.iter_modules([str(METHODS_DIR)])
                  if not m.name.startswith("_") and m.name not in SHARED_MODULES)


def weight(default: float, what: str = "weight of the retain term"):
    return Field(default, ge=0, le=MAX_SCALE, description=what)


def tuned_lr(default: float):
    """The method's learning rate on the embedded benchmark (used while the top-level lr is null)."""
    return Field(default, gt=0, le=MAX_LR, description="default learning rate (when the top-level lr is null)")


class Knobs(Section):
    """What every method has: its tuned default learning rate and an optional trainable regex."""

    lr: Optional[float] = Field(None, gt=0, le=MAX_LR, description="default learning rate (when the top-level lr is null)")
    trainable: Optional[str] = Field(None, description="regex over weight names that may train")

    _trainable = field_validator("trainable")(classmethod(lambda cls, v: _regex(v)))

    def loss_knobs(self) -> dict:
        """The knobs the loss reads (everything but lr and trainable), as plain values."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in Knobs.model_fields}


# One entry per method: a mapping of its knobs (a method left out keeps its defaults). Unknown
# method names are refused here; the knobs' values by the methods package.
Methods = create_model("Methods", __base__=Section, __doc__="`methods:` one mapping of knobs per method",
                       **{name: (Dict[str, Any], Field(default_factory=dict)) for name in method_names()})
