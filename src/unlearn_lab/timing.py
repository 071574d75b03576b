"""Where a stage's wall time goes: `with part("generate"): ...` adds the block's seconds to that
part of the process's clock, and the stage writes `report()` into its metrics as `seconds_by_part`
({part: s, ..., "total": s}), so `dvc metrics diff` and `make time` show which part a change
sped up. One stage is one process, so one clock per process; nested parts count in both.

`watch(model)` also counts the tokens every forward pass of a loaded model processes, so `make
time` can put each stage's useful FLOPs beside its seconds (`work()`)."""
from __future__ import annotations

import json
import os
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
    for counts in _WORK.values():  # the watched models' hooks hold these
        counts.update(forward=0, trained=0)


# Per watched model (by its matmul parameter count): tokens through a forward without gradient,
# and tokens through a forward that is then back-propagated.
_WORK: dict[int, dict[str, int]] = {}
WORK_LOG = "UNLEARN_LAB_WORK_LOG"  # a JSON-lines file `make time` gives each stage to append its work to


def matmul_params(model) -> int:
    """N of the 2N FLOPs per token of a forward pass (Kaplan et al. 2020, arXiv 2001.08361): every
    weight that multiplies an activation, so the input embedding (a lookup) only when it is also
    the output head (tied). Attention's own FLOPs (~2 x layers x context x width) are left out."""
    matrices = sum(p.numel() for p in model.parameters() if p.dim() >= 2)  # not norms' and biases' vectors
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    return matrices - (0 if tied else embedding.weight.numel())


def watch(model, params: int | None = None) -> None:
    """Count the tokens of every forward pass of `model` from now on: the attention mask's ones
    (padding is not useful work; a cached prompt is counted once, when it is computed), or every
    input id without a mask. `params`: N where the model's own count is not it (packed 4-bit
    weights). A copy of the model (copy.deepcopy) counts into the same total."""
    import torch

    if getattr(model, "_unlearn_lab_watched", False):
        return
    model._unlearn_lab_watched = True
    counts = _WORK.setdefault(params or matmul_params(model), {"forward": 0, "trained": 0})

    def count(module, args, kwargs):
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        new = ids.shape[0] * ids.shape[-1] if mask is None else int(mask[..., -ids.shape[-1]:].sum())
        counts["trained" if torch.is_grad_enabled() else "forward"] += new

    model.register_forward_pre_hook(count, with_kwargs=True)


def work() -> dict:
    """The process's useful FLOPs so far: 2 N per token without gradient, 6 N per token trained
    (forward and backward; LoRA's backward skips the frozen weights' gradients, so this is an upper
    bound there), summed over the watched models, with the tokens behind it."""
    return {"flops": sum(2 * n * c["forward"] + 6 * n * c["trained"] for n, c in _WORK.items()),
            "forward_tokens": sum(c["forward"] for c in _WORK.values()),
            "trained_tokens": sum(c["trained"] for c in _WORK.values())}


def log_work(stage: str) -> None:
    """Append this process's work and wall time to the file `UNLEARN_LAB_WORK_LOG` names, if any."""
    path = os.environ.get(WORK_LOG)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"stage": stage, "end": time.time(), "seconds": round(time.perf_counter() - _START, 2),
                                 **work()}) + "\n")
