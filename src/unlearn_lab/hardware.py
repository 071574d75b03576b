"""What depends on the machine: precision, optimizer kernel, attention kernel, compilation,
batching and evaluation batch sizes: params' `hardware:` and `eval:` `auto` values, resolved once.

Every "auto" resolves on a CPU to what the project did before this module existed, so CPU runs
(and their DVC outputs) do not change, with one exception: `precision: auto` takes bf16 autocast
on a CPU that computes bf16 in hardware (AVX-512 BF16 or AMX), where it is 1.2-1.5x faster; a CPU
without them emulates bf16 (slower than fp32) and stays on fp32. On a CUDA GPU it picks the fast
settings.
"""
from __future__ import annotations

import functools

import torch

from .errors import UserError
from .settings import Eval
from .settings import Hardware as HardwareSettings

# Evaluation batch sizes for `eval.batch_size` / `eval.gen_batch_size: auto`: (CPU, CUDA).
# On a GPU, 64 greedy generations at once run ~70x faster than one at a time.
EVAL_BATCH = {"batch_size": (8, 32), "gen_batch_size": (16, 64)}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cuda_bf16() -> bool:
    return cuda_available() and torch.cuda.is_bf16_supported()


# /proc/cpuinfo flags of the x86 instructions that compute bf16 products natively.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (Linux x86; anything else counts as no)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def fused_adamw_available() -> bool:
    """torch has a fused AdamW kernel on CUDA, and on CPU from 2.8 on (transformers' own default
    optimizer there, so choosing it keeps CPU runs as they were)."""
    if cuda_available():
        return True
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 8)


def _flag(value) -> bool:
    """A yes/no setting that may also be "auto" (on a CUDA GPU only)."""
    return cuda_available() if value == "auto" else value


@functools.lru_cache(maxsize=None)
def resolve(hw: HardwareSettings) -> HardwareSettings:
    """`hardware:` with every `auto` replaced by what it means on this machine (once per process)."""
    if hw.precision == "fp16" and not cuda_available():
        raise UserError("params.yaml: hardware.precision: fp16 needs a CUDA GPU (use fp32 or bf16 on a CPU)")
    precision = hw.precision
    if precision == "auto":
        # fp16 needs a loss scaler and can overflow; take it only where bf16 is missing (V100, T4).
        # On a CPU, bf16 only where it is native: emulated bf16 is slower than fp32.
        precision = ("bf16" if cuda_bf16() else "fp16") if cuda_available() else ("bf16" if cpu_bf16() else "fp32")
    optim = hw.optim
    if optim == "auto":
        optim = "adamw_torch_fused" if fused_adamw_available() else "adamw_torch"
    return hw.model_copy(update={
        "precision": precision, "optim": optim, "torch_compile": _flag(hw.torch_compile),
        "group_by_length": _flag(hw.group_by_length), "fuse_views": _flag(hw.fuse_views)})


def trainer_kwargs(hw: HardwareSettings) -> dict:
    """The `TrainingArguments` keywords that depend on the machine (`hw` already resolved)."""
    kwargs = {
        "use_cpu": not cuda_available(),
        "bf16": hw.precision == "bf16",
        "fp16": hw.precision == "fp16",
        "optim": hw.optim,
        "torch_compile": hw.torch_compile,
    }
    if hw.group_by_length:
        kwargs["train_sampling_strategy"] = "group_by_length"
    if hw.activation_checkpointing:
        kwargs.update(_checkpointing_kwargs())
    return kwargs


def _checkpointing_kwargs() -> dict:
    """Activation checkpointing for the Trainer, under the name the installed transformers uses
    (`activation_checkpointing` from 5.2x on, where `gradient_checkpointing` is its deprecated
    alias). Non-reentrant: the reentrant variant passes no gradient into a checkpointed block
    whose inputs need none, so LoRA's B matrices there would stay zero (open-unlearning #178)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


@functools.lru_cache(maxsize=None)
def resolve_eval(ev: Eval) -> Eval:
    """`eval:` with `auto` batch sizes replaced by this machine's (once per process)."""
    on_gpu = cuda_available()
    return ev.model_copy(update={key: sizes[on_gpu] if getattr(ev, key) == "auto" else getattr(ev, key)
                                 for key, sizes in EVAL_BATCH.items()})


def device() -> torch.device:
    return torch.device("cuda" if cuda_available() else "cpu")


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def process_state():
    """accelerate's view of the launch (`accelerate launch`, `torchrun`, or one process): rank,
    number of processes, device. The Trainer shares the same state."""
    from accelerate import PartialState

    # cpu=True where the Trainer's `use_cpu` will ask for it: without it accelerate reads a
    # multi-process launch on a machine without GPUs as one process (DistributedType.NO) until
    # the Trainer remakes the state, so every rank took itself for the main one and wrote.
    return PartialState(cpu=not cuda_available())


def is_main_process() -> bool:
    """True except in the non-zero ranks of a multi-process launch: only rank 0 writes models,
    metrics and DVCLive logs."""
    return process_state().is_main_process


def any_process(flag: bool) -> bool:
    """`flag` or-ed over every process of a distributed run, so all ranks stop together (a rank
    that stopped alone would leave the others waiting in their next gradient all-reduce)."""
    state = process_state()
    if state.num_processes == 1:
        return flag
    from accelerate.utils import reduce

    return bool(reduce(torch.tensor([1.0 if flag else 0.0], device=state.device), reduction="sum").item() > 0)


def launch_report() -> dict:
    """`{"processes": n}` for a run of n > 1 processes (its batch size is per process), else
    nothing: one-process reports, and the model folders that carry them, stay as they were."""
    n = process_state().num_processes
    return {"processes": n} if n > 1 else {}
