"""Unlearning methods, one file each, registered by name (`method:` in params.yaml)."""
from . import ga, gd, npo  # noqa: F401  (importing registers them)
from .base import METHODS, UnlearningMethod, answer_logprobs, get_method, register, token_mean_nll

__all__ = ["METHODS", "UnlearningMethod", "answer_logprobs", "get_method", "register", "token_mean_nll"]
