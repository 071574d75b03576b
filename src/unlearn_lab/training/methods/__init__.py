"""Unlearning methods, one file each, registered by name (`method:` in params.yaml); the folder is
scanned for them (base.discover), so adding a method touches its file, params.yaml and docs/methods.md.

The names below load on first use, so that `python -m unlearn_lab.training.methods.names` lists the
methods without importing torch.
"""
EXPORTS = ("METHODS", "Reference", "RetainKnobs", "Step", "UnlearningMethod", "answer_logprobs", "build_method",
           "check_knobs", "effective_lr", "get_method", "knobs_of", "parse_knobs", "register", "token_mean_nll",
           "trainable")

__all__ = list(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import base

    base.discover()
    return getattr(base, name)
