"""Where a stage's wall time goes: `with part("generate"): ...` adds the block's seconds to that
part of the process's clock, and the stage writes `report()` into its metrics as `seconds_by_part`
({part: s, ..., "total": s}), so `dvc metrics diff` and `make time` show which part a change
sped up. One stage is one process, so one clock per process; nested parts count in both."""
from __future__ import annotations

import time
from contextlib import contextmanager

_START = time.perf_counter()
_PARTS: dict[str, float] = {}


@contextmanager
def part(name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        _PARTS[name] = _PARTS.get(name, 0.0) + time.perf_counter() - start


def report() -> dict[str, float]:
    """Seconds by part, in the order the parts first ran, then the process's total so far
    (the rest is loading, reading and writing); tenths of a second."""
    return {**{name: round(s, 1) for name, s in _PARTS.items()}, "total": round(time.perf_counter() - _START, 1)}


def reset() -> None:
    """A fresh clock (tests; a process that runs several stages' work)."""
    global _START
    _START = time.perf_counter()
    _PARTS.clear()
