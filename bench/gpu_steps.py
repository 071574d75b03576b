"""One unlearning step of every registered method on a fixed batch: its loss and gradient norm,
measured on this machine and compared with values computed beforehand on a CPU in fp32.

The step is the unlearn stage's own (`unlearning.build_unlearn_trainer`: LoRA or full as params
say, the method's reference and views, the Trainer's precision), on the first `batch` forget and
retain records, one step from the model in `--model` (a LoRA adapter over models/base, or a full
model). The Trainer logs the step's loss and its gradient norm before clipping; nothing is updated
before they are read, so the figures are the method's loss and gradient at the given weights.

    python bench/gpu_steps.py reference --repo . --model models/target --out bench/gpu/reference-steps.json
    python bench/gpu_steps.py compare --repo REPO --model DIR --reference FILE --out steps.json

`reference` runs in fp32; `compare` runs fp32 and bf16 (autocast, what `precision: auto` takes on
a GPU) and checks each against the reference: |x - ref| <= rtol * max(|ref|, 1), rtol in
TOLERANCE. fp32 differs from the CPU only by the order of floating-point sums (expect 1e-6);
bf16 rounds every matmul input to 8 bits of mantissa (expect 1e-3 to 1e-2).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

TOLERANCE = {"fp32": {"loss": 1e-3, "grad_norm": 1e-3}, "bf16": {"loss": 5e-2, "grad_norm": 1e-1}}


@contextlib.contextmanager
def chdir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def fingerprint(model) -> float:
    """sum |w| over the merged weights in float64: the same weights give the same number anywhere."""
    return float(sum(p.detach().double().abs().sum().item() for p in model.parameters()))


def method_steps(repo: Path, model_dir: str, precision: str, methods: list[str] | None = None,
                 batch: int = 8) -> dict:
    """{"fingerprint", "batch", "precision", "device", "methods": {name: {loss, grad_norm, seconds}}}."""
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    from unlearn_lab.models import hardware
    from unlearn_lab.data.idk import load_idk_pool
    from unlearn_lab.io import read_jsonl
    from unlearn_lab.training.methods import get_method, knobs_of
    from unlearn_lab.models.loading import load_model, load_tokenizer
    from unlearn_lab.settings import Unlearn, load_settings
    from unlearn_lab.settings.sections import MAX_SCALE  # the largest bound allowed: the guard off
    from unlearn_lab.settings.knobs import method_names
    from unlearn_lab.training.finetune import EncodedDataset
    from unlearn_lab.training.unlearning import build_unlearn_trainer, build_views

    class Capture(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.logs = dict(logs)

    with chdir(repo):
        settings = load_settings()
        data = Path("data/processed")
        forget, retain = read_jsonl(data / "forget.jsonl")[:batch], read_jsonl(data / "retain.jsonl")[:batch]
        random_labels = read_jsonl(data / "random_labels.jsonl")
        idk_pool = load_idk_pool(Path("data/raw"))
        hw = hardware.resolve(settings.hardware.model_copy(update={"precision": precision}))
        tok = load_tokenizer(model_dir)
        names = methods or method_names()
        out = {"batch": batch, "precision": hw.precision, "device": str(hardware.device()), "methods": {}}
        for name in names:
            model = load_model(model_dir, attn_implementation=hw.attn_implementation)
            out.setdefault("fingerprint", fingerprint(model))
            method = get_method(name, knobs_of(settings, name))
            length = settings.model.max_length
            capture = Capture()
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as scratch:
                trainer = build_unlearn_trainer(
                    model, tok.pad_token_id, EncodedDataset(tok, forget, length), EncodedDataset(tok, retain, length),
                    method, 1e-5, settings.model,
                    Unlearn(epochs=1, batch_size=batch, retain_loss_bound=MAX_SCALE, epoch_eval=False),
                    hw, scratch, settings.unlearn.seed,
                    views=build_views(tok, method, forget, retain, length, settings.unlearn.seed, idk_pool, random_labels),
                    callbacks=(capture,))
                trainer.remove_callback(ProgressCallback)
                trainer.train()
            logs = capture.logs
            out["methods"][name] = {"loss": float(logs["loss"]), "grad_norm": float(logs["grad_norm"]),
                                    "seconds": round(time.perf_counter() - start, 2)}
            print(f"  {name:13s} {hw.precision}: loss {logs['loss']:.6g}  grad_norm {logs['grad_norm']:.6g}", flush=True)
            del trainer, model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return out


def locked_md5(repo: Path, model: str) -> str | None:
    """The md5 dvc.lock records for the model folder (None outside a DVC run's outputs): a
    reference stays valid while the committed run's model is the one it was computed on."""
    from ruamel.yaml import YAML

    lock = repo / "dvc.lock"
    if not lock.is_file():
        return None
    stages = YAML(typ="safe", pure=True).load(lock.read_text())["stages"]
    return next((out["md5"] for stage in stages.values() for out in stage.get("outs", [])
                 if out["path"] == model), None)


def compare(measured: dict, reference: dict) -> list[dict]:
    """One row per method and quantity: the reference, this machine's value, the relative
    difference and whether it is inside the precision's tolerance."""
    rows = []
    tol = TOLERANCE[measured["precision"]]
    for name, ref in reference["methods"].items():
        got = measured["methods"].get(name)
        for key in ("loss", "grad_norm"):
            value = got[key] if got else float("nan")
            diff = abs(value - ref[key]) / max(abs(ref[key]), 1.0)
            rows.append({"method": name, "quantity": key, "precision": measured["precision"], "cpu_fp32": ref[key],
                         "here": value, "rel_diff": diff, "tolerance": tol[key],
                         "ok": bool(math.isfinite(value) and diff <= tol[key])})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["reference", "compare"])
    ap.add_argument("--repo", type=Path, default=Path("."), help="project folder: params.yaml, data/, models/base")
    ap.add_argument("--model", default="models/target", help="model folder, relative to --repo")
    ap.add_argument("--reference", type=Path, help="compare: the CPU fp32 values")
    ap.add_argument("--methods", nargs="+")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.action == "reference":
        result = method_steps(args.repo, args.model, "fp32", args.methods, args.batch)
        result["command"] = "python bench/gpu_steps.py " + " ".join(argv if argv is not None else sys.argv[1:])
        result["dvc_lock_md5"] = locked_md5(args.repo, args.model)
    else:
        if not args.reference:
            sys.exit("error: compare needs --reference")
        reference = json.loads(args.reference.read_text())
        names = args.methods or sorted(reference["methods"])
        result = {"reference_fingerprint": reference["fingerprint"], "runs": []}
        for precision in ("fp32", "bf16"):
            run = method_steps(args.repo, args.model, precision, names, reference["batch"])
            run["rows"] = compare(run, reference)
            result["runs"].append(run)
        result["fingerprint"] = result["runs"][0]["fingerprint"]
        result["same_weights"] = abs(result["fingerprint"] / reference["fingerprint"] - 1) < 1e-9
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
