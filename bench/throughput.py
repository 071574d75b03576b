"""Throughput of the project's own unlearning step and evaluation on randomly initialised
SmolLM2-135M / Qwen2.5-1.5B architectures: tokens/s, model-FLOPs utilisation, peak memory.

    python bench/throughput.py --arch smollm2-135m                      # GPU: the real sizes
    python bench/throughput.py --arch qwen2.5-1.5b --full --batch 32
    python bench/throughput.py --small --steps 3 --warmup 1            # CPU smoke run, < 1 minute

Training: `gd` and `npo` through `unlearning.build_unlearn_trainer`, the unlearn stage's own wiring
(`UnlearnTrainer` with the method loss, divergence guard and fused views, `training_args` with
params' `hardware:` settings, the reference) — on random token ids (no tokenizer needed: the
throughput does not depend on which ids they are). Each step has a forget and a retain view of
`--batch` x `--seq` tokens, loss on the second half of each sequence. Each method runs in its own
process, so its peak memory is its own.

Evaluation: the project's `generate_answers` (batched, and one question at a time) and
`shared_prompt_nlls` (one prompt, 7 candidate answers), on chat-formatted questions with the
embedded SmolLM2 tokenizer, weights in fp32 as the evaluate stage loads them. Generation is
forced to run `--max-new-tokens` (min_new_tokens) so the token count is exact.

MFU counts model FLOPs: 6 x parameters x tokens for a trained forward+backward (the convention
of DESIGN.md's table, also for LoRA, which does less: ~4N), 2 x parameters x tokens for a forward
without gradient (npo's reference, evaluation); attention's own FLOPs are left out. Peak FLOP/s
come from the table below (dense bf16) or --peak-tflops; on a CPU MFU is printed only with
--peak-tflops.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Dense bf16 tensor-core peaks (TFLOP/s), most specific name first.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
               ("L40S", 362.0), ("A10G", 125.0), ("L4", 121.0)]

ARCHS = {
    # HuggingFaceTB/SmolLM2-135M(-Instruct): matches the embedded model's config.json.
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                   tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5,
                                   max_position_embeddings=8192)),
    # Qwen/Qwen2.5-1.5B(-Instruct) config.json.
    "qwen2.5-1.5b": ("qwen2", dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                   max_position_embeddings=32768)),
}
# --small: the same family and vocabulary, a CPU-sized body.
SMALL = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
EVAL_ANSWERS = 7  # the evaluation's candidates per question: reference, paraphrase, 5 perturbed


# ---------------------------------------------------------------- arithmetic (unit-tested)


def training_flops(params: int, trained_tokens: int, reference_tokens: int = 0) -> float:
    """Model FLOPs of a step: 6N per trained token (forward + backward), 2N per reference token."""
    return 6.0 * params * trained_tokens + 2.0 * params * reference_tokens


def inference_flops(params: int, tokens: int) -> float:
    return 2.0 * params * tokens


def mfu(flops: float, seconds: float, peak_tflops: float) -> float:
    """Achieved FLOP/s as a fraction of the device's peak."""
    return flops / seconds / (peak_tflops * 1e12)


def peak_tflops_of(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# ---------------------------------------------------------------- machine


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()


def peak_memory_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[int, str]:
    """GPU: the peak of torch's allocations since the last reset. CPU: the process's peak
    resident set (Linux reports KiB), which includes Python, torch and the weights."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_model(arch: str, small: bool, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    family, sizes = ARCHS[arch]
    sizes = {**sizes, **(SMALL if small else {})}
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if family == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(**sizes, bos_token_id=1, eos_token_id=2, pad_token_id=2, attn_implementation="sdpa")
    torch.manual_seed(seed)
    return model_cls(config)


def count_params(model) -> int:
    # Unique tensors: a tied head shares the embedding matrix and counts once.
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ---------------------------------------------------------------- training


def synthetic_examples(n: int, seq: int, vocab: int, seed: int, answer: int | None = None) -> list[dict]:
    """Random ids; the last `answer` tokens (default: half) are the 'answer' (the loss), the rest the 'prompt'."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    prompt = seq - (answer or seq // 2)
    out = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (seq,), generator=gen).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def train_run(opts: dict, method_name: str) -> dict:
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    from unlearn_lab.models import hardware
    from unlearn_lab.training.methods import get_method
    from unlearn_lab.settings import Hardware, Lora, Model, Unlearn
    from unlearn_lab.settings.sections import MAX_SCALE  # the largest bound allowed: the guard off
    from unlearn_lab.training.unlearning import build_unlearn_trainer

    torch.set_num_threads(opts["threads"])
    if opts["all_logits"]:
        # the step as it was before answer windows: the output layer on every position
        from unlearn_lab.models import architecture
        architecture.takes_logits_to_keep = lambda model: False
    model = build_model(opts["arch"], opts["small"])
    params = count_params(model)
    vocab = model.config.vocab_size
    lora = LORA if opts["lora"] else None
    method = get_method(method_name)
    steps, batch, seq = opts["steps"] + opts["warmup"], opts["batch"], opts["seq"]
    hw = hardware.resolve(Hardware(precision=opts["precision"], fuse_views=opts["fuse"], torch_compile=opts["compile"]))
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            times.append(time.perf_counter() - self.start)
            if len(times) == opts["warmup"]:
                peak_memory_reset()

    with tempfile.TemporaryDirectory() as scratch:
        # The unlearn stage's own wiring (trainable weights, reference, pairing, guard), on random ids.
        trainer = build_unlearn_trainer(
            model, 2, synthetic_examples(steps * batch, seq, vocab, 1, opts["answer"]),
            synthetic_examples(steps * batch, seq, vocab, 2, opts["answer"]),
            method, 1e-5, Model(lora=Lora(**lora) if lora else None), Unlearn(epochs=1, batch_size=batch,
                                                                              retain_loss_bound=MAX_SCALE),
            hw, scratch, 0, callbacks=(StepTimer(),))
        trainer.remove_callback(ProgressCallback)
        trainer.train()
    guard = trainer.guard
    measured = times[opts["warmup"]:]
    step_s = sum(measured) / len(measured)
    trained = 2 * batch * seq  # forget + retain views
    reference_tokens = batch * seq if method.needs_reference else 0
    memory, memory_kind = peak_memory()
    resolved = hw
    return {
        "phase": f"train {method_name} ({'LoRA r16' if lora else 'full'})",
        "method": method_name, "lora": bool(lora), "params": params, "precision": resolved.precision,
        "optim": resolved.optim, "fuse_views": resolved.fuse_views, "steps_timed": len(measured),
        "step_s": step_s, "tokens_per_s": trained / step_s,
        "flops": training_flops(params, trained, reference_tokens),
        "seconds": step_s, "peak_memory_bytes": memory, "memory_kind": memory_kind,
        "stopped_early": guard.reason,
    }


# ---------------------------------------------------------------- evaluation


def eval_run(opts: dict) -> list[dict]:
    import torch

    from unlearn_lab.evaluation.questions import generate_answers, shared_prompt_nlls
    from unlearn_lab.models.hardware import device
    from unlearn_lab.models.loading import _load_embedded_tokenizer, prompt_text

    torch.set_num_threads(opts["threads"])
    tok = _load_embedded_tokenizer()
    model = build_model(opts["arch"], opts["small"]).to(device()).eval()
    params = count_params(model)
    new = opts["max_new_tokens"]
    generate_answers(model, tok, ["Warm-up?"], batch_size=1, max_new_tokens=2)
    # Random weights rarely pick eos, but "rarely" is not a count: make every answer full length.
    model.generation_config.min_new_tokens = new
    questions = [f"In which city was the fictitious chemist number {i} born, and in which year?"
                 for i in range(opts["eval_questions"])]
    prompt_tokens = [len(tok(prompt_text(tok, q), add_special_tokens=False)["input_ids"]) for q in questions]
    rows = []

    def timed(phase, fn, n_questions, gen_tokens, forward_tokens):
        peak_memory_reset()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        seconds = time.perf_counter() - start
        memory, kind = peak_memory()
        tokens = gen_tokens or forward_tokens
        rows.append({"phase": phase, "params": params, "precision": "fp32", "seconds": seconds,
                     "questions_per_s": n_questions / seconds, "tokens_per_s": tokens / seconds,
                     "tokens": tokens, "flops": inference_flops(params, forward_tokens + gen_tokens),
                     "peak_memory_bytes": memory, "memory_kind": kind})

    n, gb = len(questions), opts["gen_batch"]
    timed(f"generate batched ({gb} per batch, {new} new tokens)",
          lambda: generate_answers(model, tok, questions, batch_size=gb, max_new_tokens=new),
          n, n * new, sum(prompt_tokens))
    k = min(n, opts["single_questions"])
    timed(f"generate one question at a time ({k} questions)",
          lambda: [generate_answers(model, tok, [q], batch_size=1, max_new_tokens=new) for q in questions[:k]],
          k, k * new, sum(prompt_tokens[:k]))
    answers = [[f"Chemist {i} was born in Town{j} in {1950 + j}." for j in range(EVAL_ANSWERS)] for i in range(n)]
    answer_tokens = sum(len(tok(a, add_special_tokens=False)["input_ids"]) + 1 for row in answers for a in row)
    timed(f"shared_prompt_nlls (batch {opts['nll_batch']}, {EVAL_ANSWERS} answers per prompt)",
          lambda: shared_prompt_nlls(model, tok, questions, answers, batch_size=opts["nll_batch"], token_stats=True),
          n, 0, sum(prompt_tokens) + answer_tokens)
    return rows


# ---------------------------------------------------------------- driver


def in_child(fn, *args):
    """Run fn in a fresh process: its peak memory is its own, and a GPU is released after."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="smollm2-135m")
    ap.add_argument("--small", action="store_true", help="2 layers, hidden 128 (same vocabulary): a CPU smoke run")
    ap.add_argument("--steps", type=int, help="timed training steps per method (default 10; --small: 3)")
    ap.add_argument("--warmup", type=int, help="untimed steps first: allocation, kernel choice (default 2; --small: 1)")
    ap.add_argument("--batch", type=int, help="examples per view per step (default 32; --small: 8)")
    ap.add_argument("--seq", type=int, default=64, help="tokens per example")
    ap.add_argument("--answer", type=int, help="tokens of each example with a loss, at its end (default: half of --seq)")
    ap.add_argument("--all-logits", action="store_true",
                    help="the output layer on every position, as before answer windows (what the window saves)")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--lora", dest="lora", action="store_true", default=True, help="LoRA r16 on all linear layers (default)")
    group.add_argument("--full", dest="lora", action="store_false", help="full fine-tuning")
    ap.add_argument("--fuse", default="auto", choices=["auto", "on", "off"], help="hardware.fuse_views")
    ap.add_argument("--compile", action="store_true", help="hardware.torch_compile")
    ap.add_argument("--methods", nargs="+", default=["gd", "npo"])
    ap.add_argument("--eval-questions", type=int, help="default 64; --small: 16")
    ap.add_argument("--single-questions", type=int, default=8, help="questions for the one-at-a-time generation")
    ap.add_argument("--gen-batch", type=int, help="default: eval.gen_batch_size auto (16 on CPU, 64 on a GPU)")
    ap.add_argument("--nll-batch", type=int, help="default: eval.batch_size auto (8 on CPU, 32 on a GPU)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak, overriding the table")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args(argv)

    import torch

    from unlearn_lab.models.hardware import resolve_eval
    from unlearn_lab.settings import Eval

    for key, full, small in (("steps", 10, 3), ("warmup", 2, 1), ("batch", 32, 8), ("eval_questions", 64, 16)):
        if getattr(a, key) is None:
            setattr(a, key, small if a.small else full)
    a.gen_batch = a.gen_batch or resolve_eval(Eval()).gen_batch_size
    a.nll_batch = a.nll_batch or resolve_eval(Eval()).batch_size
    # The children inherit these: no progress bars in the figures' output.
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    opts = {**vars(a), "fuse": {"auto": "auto", "on": True, "off": False}[a.fuse],
            "threads": a.threads or torch.get_num_threads()}
    name = device_name()
    peak = a.peak_tflops or (peak_tflops_of(name) if torch.cuda.is_available() else None)
    print(f"device: {name}; torch {torch.__version__}, {opts['threads']} CPU threads; arch {a.arch}"
          f"{' (--small)' if a.small else ''}; peak {peak or 'unknown'} TFLOP/s; batch {a.batch} x {a.seq} tokens per view, "
          f"{a.steps} timed steps after {a.warmup}", flush=True)
    rows = []
    for m in a.methods:
        rows.append(in_child(train_run, opts, m))
        print(f"  {rows[-1]['phase']}: {rows[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
    if not a.no_eval:
        rows.extend(in_child(eval_run, opts))
    for row in rows:
        row["mfu"] = mfu(row["flops"], row["seconds"], peak) if peak else None
        # the fields every results/*.json row carries, whatever the phase
        row.update(device=name, arch=a.arch + ("-small" if a.small else ""), mode="lora" if a.lora else "full",
                   method=row.get("method"), seq_len=a.seq, batch=a.batch if "method" in row else None,
                   peak_mem_gib=row["peak_memory_bytes"] / 2**30)
    print(f"\n| phase | params | precision | tokens/s | model TFLOP/s | MFU | peak memory |\n|---|---|---|---|---|---|---|")
    for row in rows:
        extra = f", {row['questions_per_s']:.1f} questions/s" if "questions_per_s" in row else ""
        print(f"| {row['phase']} | {row['params'] / 1e6:.1f}M | {row['precision']} | {row['tokens_per_s']:,.0f}{extra} | "
              f"{row['flops'] / row['seconds'] / 1e12:.4f} | "
              f"{'%.2f%%' % (100 * row['mfu']) if row['mfu'] is not None else '-'} | "
              f"{fmt_bytes(row['peak_memory_bytes'])} ({row['memory_kind']}) |")
    train = {r["method"]: r for r in rows if "method" in r}
    if {"gd", "npo"} <= set(train):
        ratio = train["npo"]["peak_memory_bytes"] / train["gd"]["peak_memory_bytes"]
        print(f"\npeak memory npo / gd ({'LoRA' if a.lora else 'full'}): {ratio:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"device": name, "argv": sys.argv[1:], "peak_tflops": peak,
                                            "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
