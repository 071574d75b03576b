"""Unlearning methods, one file each, registered by name (`method:` in params.yaml)."""
from . import (  # noqa: F401  (importing registers them)
    ga, ga_kl, gd, idk_ap, idk_dpo, me_gd, npo, random_label, rmu, satimp, simnpo, undial, weighted, wga,
)
from .base import (METHODS, Reference, UnlearningMethod, answer_logprobs, build_method, get_method, register,
                   token_mean_nll)

__all__ = ["METHODS", "Reference", "UnlearningMethod", "answer_logprobs", "build_method", "get_method", "register", "token_mean_nll"]
