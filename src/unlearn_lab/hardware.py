"""What depends on the machine: precision, optimizer kernel, attention kernel, compilation,
batching and evaluation batch sizes, resolved once from params' `hardware:` block.

Every "auto" resolves on a CPU to what the project did before this module existed, so CPU runs
(and their DVC outputs) do not change; on a CUDA GPU it picks the fast settings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .io import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# Evaluation batch sizes for `eval.batch_size` / `eval.gen_batch_size: auto`: (CPU, CUDA).
# On a GPU, 64 greedy generations at once run ~70x faster than one at a time (DESIGN.md).
EVAL_BATCH = {"batch_size": (8, 32), "gen_batch_size": (16, 64)}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cuda_bf16() -> bool:
    return cuda_available() and torch.cuda.is_bf16_supported()


def fused_adamw_available() -> bool:
    """torch has a fused AdamW kernel on CUDA, and on CPU from 2.8 on (transformers' own default
    optimizer there, so choosing it keeps CPU runs as they were)."""
    if cuda_available():
        return True
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 8)


def _flag(cfg: dict, key: str, default):
    """A yes/no knob that may also be "auto" (on a CUDA GPU only)."""
    value = cfg.get(key, default)
    if value == "auto":
        return cuda_available()
    if not isinstance(value, bool):
        raise UserError(f"params.yaml: hardware.{key}: expected true, false or auto, got {value!r}")
    return value


@dataclass(frozen=True)
class Hardware:
    precision: str          # bf16 | fp16 | fp32: the autocast dtype of training (weights stay fp32)
    optim: str              # a transformers optimizer name
    attn_implementation: str | None
    torch_compile: bool
    group_by_length: bool   # length-grouped batches: less padding, a different (seeded) order
    fuse_views: bool        # all views of a step in one padded forward (methods/base.py)


def resolve(cfg: dict | None) -> Hardware:
    cfg = dict(cfg or {})
    precision = str(cfg.get("precision", "auto"))
    if precision not in PRECISIONS:
        raise UserError(f"params.yaml: hardware.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        # fp16 needs a loss scaler and can overflow; take it only where bf16 is missing (V100, T4).
        precision = ("bf16" if cuda_bf16() else "fp16") if cuda_available() else "fp32"
    if precision == "fp16" and not cuda_available():
        raise UserError("params.yaml: hardware.precision: fp16 needs a CUDA GPU (use fp32 or bf16 on a CPU)")
    optim = str(cfg.get("optim", "auto"))
    if optim == "auto":
        optim = "adamw_torch_fused" if fused_adamw_available() else "adamw_torch"
    attn = cfg.get("attn_implementation", "sdpa")
    return Hardware(
        precision=precision,
        optim=optim,
        attn_implementation=str(attn) if attn else None,
        torch_compile=_flag(cfg, "torch_compile", False),
        group_by_length=_flag(cfg, "group_by_length", False),
        fuse_views=_flag(cfg, "fuse_views", "auto"),
    )


def trainer_kwargs(cfg: dict | None) -> dict:
    """The `TrainingArguments` keywords that depend on the machine."""
    hw = resolve(cfg)
    kwargs = {
        "use_cpu": not cuda_available(),
        "bf16": hw.precision == "bf16",
        "fp16": hw.precision == "fp16",
        "optim": hw.optim,
        "torch_compile": hw.torch_compile,
    }
    if hw.group_by_length:
        kwargs["train_sampling_strategy"] = "group_by_length"
    return kwargs


def eval_batch_size(eval_cfg: dict, key: str) -> int:
    """`eval.batch_size` / `eval.gen_batch_size`: a number, or "auto" for the machine's size."""
    cpu, gpu = EVAL_BATCH[key]
    value = eval_cfg.get(key, cpu)
    if value == "auto":
        return gpu if cuda_available() else cpu
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise UserError(f"params.yaml: eval.{key}: expected a number or auto, got {value!r}") from None
    if size <= 0:
        raise UserError(f"params.yaml: eval.{key}: must be positive, got {size}")
    return size


def device() -> torch.device:
    return torch.device("cuda" if cuda_available() else "cpu")


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def is_main_process() -> bool:
    """True except in the non-zero ranks of a multi-process launch (`accelerate launch` and
    `torchrun` set RANK): only rank 0 writes models, metrics and DVCLive logs."""
    return int(os.environ.get("RANK", "0")) == 0


def any_process(flag: bool) -> bool:
    """`flag` or-ed over every process of a distributed run, so all ranks stop together (a rank
    that stopped alone would leave the others waiting in their next gradient all-reduce)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device() if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
