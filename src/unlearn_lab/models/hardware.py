"""What depends on the machine: precision, optimizer kernel, compilation, batching and
evaluation batch sizes: params' `hardware:` and `eval:` `auto` values, resolved once.

On every CPU each "auto" means the same thing (fp32 above all: a CPU with native bf16 would train
faster in bf16, but its numbers would then differ from every other CPU's, so bf16 is a choice,
`precision: bf16`, never a default). On a CUDA GPU auto picks the fast settings.

What auto means here is recorded in `machine.yaml` (`python -m unlearn_lab.models.hardware`, run with
the versions.yaml writer by `make install` / `make env`) and listed under the params of every stage that resolves it: a machine where auto
means something else is a different experiment, which DVC re-runs and `dvc exp show` shows. A
stage refuses to run where this machine's meaning differs from the file's (`check_machine`).
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

from .. import environment
from ..errors import UserError
from ..settings import Eval
from ..settings import Hardware as HardwareSettings

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
    """Whether this CPU computes bf16 in hardware (Linux x86; anything else counts as no). Only
    for advice: `precision: bf16` on a CPU without it is emulated, slower than fp32."""
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
    """`hardware:` with every `auto` replaced by what it means on this machine (once per process),
    recorded for the metrics and model folders this process writes (environment.machine_record)."""
    out = _resolve(hw)
    environment.record_machine(device=device().type, **{k: getattr(out, k) for k in TRAINING_KEYS})
    return out


def _resolve(hw: HardwareSettings) -> HardwareSettings:
    if hw.precision == "fp16" and not cuda_available():
        raise UserError("params.yaml: hardware.precision: fp16 needs a CUDA GPU (use fp32 or bf16 on a CPU)")
    precision = hw.precision
    if precision == "auto":
        # fp16 needs a loss scaler and can overflow; take it only where bf16 is missing (V100, T4).
        # On a CPU always fp32: the same numbers on every CPU (bf16 only where a user asks).
        precision = ("bf16" if cuda_bf16() else "fp16") if cuda_available() else "fp32"
    elif precision == "bf16" and not cuda_available() and not cpu_bf16():
        print("note: hardware.precision: bf16 on a CPU without native bf16 (avx512_bf16 / amx_bf16) is "
              "emulated, slower than fp32", file=sys.stderr)
    optim = hw.optim
    if optim == "auto":
        optim = "adamw_torch_fused" if fused_adamw_available() else "adamw_torch"
    return hw.model_copy(update={
        "precision": precision, "optim": optim, "torch_compile": _flag(hw.torch_compile),
        "group_by_length": _flag(hw.group_by_length), "fuse_views": _flag(hw.fuse_views)})


# The `hardware:` choices a training run records, besides the device.
TRAINING_KEYS = ("precision", "optim", "torch_compile", "group_by_length", "fuse_views")


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
    """`eval:` with `auto` batch sizes replaced by this machine's (once per process), recorded."""
    out = _resolve_eval(ev)
    environment.record_machine(device=device().type, **{f"eval_{key}": getattr(out, key) for key in EVAL_BATCH})
    return out


def _resolve_eval(ev: Eval) -> Eval:
    on_gpu = cuda_available()
    return ev.model_copy(update={key: sizes[on_gpu] if getattr(ev, key) == "auto" else getattr(ev, key)
                                 for key, sizes in EVAL_BATCH.items()})


# machine.yaml's keys, in file order (dvc.yaml lists them under the params of each stage that
# imports this module: scripts/check_deps.py checks it).
MACHINE_FILE, MACHINE_KEYS = environment.MACHINE_FILE, environment.MACHINE_KEYS
assert MACHINE_KEYS == ("device", *TRAINING_KEYS, *(f"eval_{key}" for key in EVAL_BATCH))


def auto_meanings() -> dict:
    """What each `auto` of `hardware:` and `eval:` means on this machine: machine.yaml's content."""
    from ..settings import Eval as EvalSettings

    hw = _resolve(HardwareSettings(precision="auto", optim="auto", torch_compile="auto",
                                   group_by_length="auto", fuse_views="auto"))
    ev = _resolve_eval(EvalSettings(batch_size="auto", gen_batch_size="auto"))
    return {"device": device().type, **{k: getattr(hw, k) for k in TRAINING_KEYS},
            **{f"eval_{key}": getattr(ev, key) for key in EVAL_BATCH}}


def render_machine(meanings: dict) -> str:
    lines = ["# Written by `make install` / `make env` (python -m unlearn_lab.models.hardware); do not edit.",
             "# What each `auto` of params.yaml's hardware: and eval: means on this machine. dvc.yaml",
             "# lists these keys as params of the stages that resolve them: a machine where auto means",
             "# something else re-runs them, and a stage refuses to run where this file is out of date."]
    lines += [f"{key}: {str(meanings[key]).lower() if isinstance(meanings[key], bool) else meanings[key]}"
              for key in MACHINE_KEYS]
    return "\n".join(lines) + "\n"


def check_machine(path: Path = MACHINE_FILE) -> None:
    """UserError when this machine's meaning of `auto` differs from the recorded one (a folder
    without the file, a stage run by hand outside the repository, is not checked)."""
    if not path.is_file():
        return
    from ruamel.yaml import YAML

    want = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    have = auto_meanings()
    differ = [f"{k} {want.get(k, 'unrecorded')} -> {have[k]}" for k in MACHINE_KEYS if want.get(k) != have[k]]
    if differ:
        raise UserError(f"{path}: `auto` means something else on this machine ({', '.join(differ)}): run "
                        f"`make env` to record it, and DVC re-runs the stages it affects")


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


def end_processes() -> None:
    """Every rank waits for the others, then the process group is torn down before the
    interpreter exits. Left to exit on their own, a rank that finished first closed its gloo
    connections under a peer still tearing down, which aborted that peer ("terminate called
    without an active exception") after all its work was written. One process: nothing."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    state = process_state()
    state.wait_for_everyone()
    state.destroy_process_group()


def launch_report() -> dict:
    """`{"processes": n}` for a run of n > 1 processes (its batch size is per process), else
    nothing: one-process reports, and the model folders that carry them, stay as they were."""
    n = process_state().num_processes
    return {"processes": n} if n > 1 else {}


def main() -> None:
    environment.record_cli("Write machine.yaml: what each `auto` of params' hardware: and eval: means on this "
                           "machine (--check: exit 2 if it is out of date).", MACHINE_FILE, check_machine,
                           lambda: render_machine(auto_meanings()))


if __name__ == "__main__":
    main()
