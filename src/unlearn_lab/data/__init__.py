"""Benchmark data: synthetic people, world facts, imported user data, random labels, IDK pool.

Stages import the submodule they need (benchmark.py builds the sets, random_labels.py the
random labels, idk.py reads the refusal pool), so an edit to the importer does not re-run the
unlearning stage. The names below are re-exported lazily for convenience.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"DataError": "records", "validate_records": "records", "build_benchmark": "benchmark",
            "make_random_labels": "random_labels", "load_idk_pool": "idk"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
