"""Means over the whole global batch of a multi-process run, for the unlearning losses.

DDP averages the ranks' gradients. A loss that is a mean over its own rank's tokens (or examples)
therefore weights each rank equally, not each token: with ranks holding 30 and 10 answer tokens, a
token of the second counts three times as much as one of the first, and the update differs from
the one-process run of the same global batch (by 15% on the tiny model). As the fine-tune's
Trainer does with `num_items_in_batch`, a rank's loss here is its sum divided by the count over
*all* ranks, times the number of ranks (which DDP's averaging divides out): the gradient is that
of the one-process mean, to float rounding.

Only inside `over_global_batch()` (the unlearning trainer's loss) and only in a multi-process
run: every rank computes the same loss terms in the same order there, so each all-reduce of a
count meets its partners; an evaluation on one rank alone must never wait for the others.
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist

_active = False


@contextlib.contextmanager
def over_global_batch():
    """Within it, `mean_over` and `example_mean` average over every rank's share of the batch."""
    global _active
    before = _active
    _active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    try:
        yield
    finally:
        _active = before


def _all_ranks(count: torch.Tensor) -> tuple[torch.Tensor, int]:
    total = count.detach().clone()
    dist.all_reduce(total)
    return total, dist.get_world_size()


def mean_over(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """`total / count` (count at least 1): a mean whose denominator counts tokens (or any units)
    of this rank; in a multi-process loss, total * ranks / (count summed over the ranks)."""
    if not _active:
        return total / count.clamp(min=1)
    everywhere, ranks = _all_ranks(count)
    return total * ranks / everywhere.clamp(min=1)


def example_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of per-example values (dim 0), over the global batch in a multi-process loss."""
    if not _active:
        return values.mean()
    return mean_over(values.sum(), torch.tensor(values.shape[0], device=values.device))
