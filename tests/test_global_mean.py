"""Means over the global batch (global_mean): two gloo ranks holding unequal shares give, after
DDP-style gradient averaging, the gradient of the one-process mean over every token."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from unlearn_lab.models.global_mean import example_mean, mean_over, over_global_batch

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

# 5 tokens on rank 0, 1 on rank 1: a per-rank mean would weight rank 1's token 5x.
VALUES = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
SHARES = [slice(0, 5), slice(5, 6)]


def rank_gradient(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        w = torch.tensor(1.0, requires_grad=True)
        share = VALUES[SHARES[rank]]
        with over_global_batch():
            token_loss = mean_over((w * share ** 2).sum(), torch.tensor(len(share)))
            example_loss = example_mean(w * share)
        grads = torch.stack(torch.autograd.grad(token_loss + 10 * example_loss, w))
        dist.all_reduce(grads)  # what DDP does, then divides by the ranks
        out[rank] = (grads / 2).item()
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_take_the_one_process_gradient():
    out = mp.Manager().dict()
    mp.spawn(rank_gradient, args=(free_port(), out), nprocs=2)
    # by hand: d/dw [w mean(v^2) + 10 w mean(v)] over all 6 values
    expected = (VALUES ** 2).mean().item() + 10 * VALUES.mean().item()
    assert out[0] == pytest.approx(expected, rel=1e-6) and out[1] == pytest.approx(expected, rel=1e-6)
    # what the per-rank means gave: each rank's mean weighted equally
    per_rank = sum((VALUES[s] ** 2).mean().item() + 10 * VALUES[s].mean().item() for s in SHARES) / 2
    assert abs(per_rank - expected) > 1


def test_one_process_is_the_plain_mean_bit_for_bit():
    v, mask = torch.tensor([[0.3, 0.7, 1.1]]), torch.tensor([[True, False, True]])
    with over_global_batch():
        assert torch.equal(mean_over((v * mask).sum(), mask.sum()), (v * mask).sum() / mask.sum().clamp(min=1))
        assert torch.equal(example_mean(v[0]), v[0].mean())
    assert mean_over(torch.tensor(0.0), torch.tensor(0)).item() == 0.0  # nothing counted: 0, not nan
