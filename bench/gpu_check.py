"""The prepared GPU check (bench/gpu_check.sh runs it): the default pipeline, one step of every
method, throughput, then a small method study, each part writing under --out.

  a. `dvc repro` of the project in a fresh copy (every stage runs), each stage's wall time, and
     every headline of metrics/summary.json beside the committed CPU value and its 95% interval;
  b. one unlearning step of every registered method on a fixed batch from the committed target
     (bench/gpu_steps.py), fp32 and bf16 against CPU fp32 values carried in
     bench/gpu/reference-steps.json;
  c. bench/throughput.py: SmolLM2-135M and the Qwen2.5-1.5B architecture (random weights), LoRA
     and full, npo and gd (JSON rows under --out/results);
  d. while the time budget lasts, the default study of ga, gd, npo, simnpo, rmu and weighted
     (`method=` changed in the copy, `dvc repro` re-running unlearning and what follows).

--tiny: the same on the tiny random model with one epoch, parts a and b only, the reference
computed on the spot: the CPU run the test suite makes so that this script cannot rot.

Outputs (--out, default $OUT or .gpu/out): gpu_check.json (every figure), gpu_check.md (the tables),
log.txt (the parts' own output) and results/throughput-*.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from pipeline import timed_repro  # noqa: E402  (bench/ is not a package)

from unlearn_lab.studies.scratch import set_params  # noqa: E402  (merges as `dvc exp run -S` does)

STAGE = Path("/tmp/gpu-stage")
STUDY = ["ga", "gd", "npo", "simnpo", "rmu", "weighted"]
THROUGHPUT = [("smollm2-135m", "lora"), ("smollm2-135m", "full"), ("qwen2.5-1.5b", "lora"), ("qwen2.5-1.5b", "full")]
# One epoch of everything on a 2-layer random model: a few minutes on 2 CPU cores.
TINY = {
    "model": {"source": "tiny-random", "tiny": {"layers": 2, "hidden": 32}, "max_length": 64,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}},
    "data": {"people": 8, "holdout_people": 1, "forget_fraction": 0.125, "world_eval_size": 6,
             "world_replay": 4, "random_labels_k": 1},
    "finetune": {"epochs": 1},
    "unlearn": {"epochs": 1, "batch_size": 4, "retain_loss_bound": 100.0},
    "eval": {"max_new_tokens": 4, "bootstrap": 50},
    "quantize": {"group_size": 16, "retain_size": 4},
    "relearn": {"steps": 2, "batch_size": 2},
    "represent": {"candidates": 3},
    "attack": {"samples": 2, "paraphrases": 1},
    "methods": {"rmu": {"layer": 1}},
}
PROJECT_FILES = ("stages", "src", "data/raw", "dvc.yaml", ".dvcignore", ".gitignore", "params.yaml")


class Check:
    def __init__(self, out: Path, budget: float, tiny: bool):
        self.out, self.tiny, self.deadline = out, tiny, time.monotonic() + budget
        self.work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu-check"))
        self.repo = self.work / "repo"
        self.log = open(out / "log.txt", "a", buffering=1)
        self.result: dict = {"tiny": tiny, "errors": {}}
        self.python = sys.executable
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.repo / "src")] + [p for p in os.environ.get(
            "PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != (ROOT / "src").resolve()])
        self.env.update(DVC_NO_ANALYTICS="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")

    def sh(self, args: list[str], cwd: Path | None = None) -> str:
        proc = subprocess.run(args, cwd=cwd or self.repo, env=self.env, capture_output=True, text=True)
        self.log.write(proc.stdout + proc.stderr)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-600:]}")
        return proc.stdout

    def part(self, key: str, fn) -> None:
        self.say(f"== part {key} ({self.left():.0f} s of the budget left)")
        start = time.monotonic()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001  (a failing part must not stop the others)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.result["errors"][key] = f"{type(exc).__name__}: {exc}"
            self.log.write(traceback.format_exc())
            self.say(f"part {key} failed: {self.result['errors'][key]}")
        self.result.setdefault("part_seconds", {})[key] = round(time.monotonic() - start, 1)
        self.save()

    def save(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(report(self.result))

    # ------------------------------------------------------------------ parts

    def project(self) -> None:
        """A fresh copy of the project (sources, raw data, params) as its own git + DVC repository,
        versions.yaml and machine.yaml written for this machine's libraries and `auto`s."""
        if self.repo.exists():
            shutil.rmtree(self.repo)
        self.repo.mkdir(parents=True)
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, self.repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy(src, self.repo / name)
        if self.tiny:
            set_params(self.repo / "params.yaml", TINY)
        self.sh([self.python, "-m", "unlearn_lab.environment"])
        self.sh([self.python, "-m", "unlearn_lab.models.hardware"])  # machine.yaml: what auto means on this machine
        git = ["git", "-c", "user.email=check@localhost", "-c", "user.name=check"]
        scm = shutil.which("git") is not None
        if scm:
            self.sh(["git", "init", "-q"])
        self.sh([self.python, "-m", "dvc", "init", "-q"] + ([] if scm else ["--no-scm"]))
        self.sh([self.python, "-m", "dvc", "config", "cache.type", "hardlink,symlink"])
        if scm:
            # DVCLive compares against a commit, as in any cloned repository.
            self.sh(["git", "add", "-A"])
            self.sh(git + ["commit", "-qm", "project"])

    def part_a(self) -> None:
        self.project()
        times, total = timed_repro(self.repo, self.env, (self.python, "-m", "dvc", "repro"), self.log)
        summary = json.loads((self.repo / "metrics" / "summary.json").read_text())
        committed = json.loads((ROOT / "metrics" / "summary.json").read_text())
        self.result["pipeline"] = {"stages": {k: round(v, 1) for k, v in times}, "total_s": round(total, 1),
                                   "headlines": compare_headlines(committed, summary)}
        self.say(f"dvc repro: {total:.0f} s")

    def part_b(self) -> None:
        if not (self.repo / "models" / "base").is_dir():
            raise RuntimeError("part a made no models/base")
        out = self.work / "steps.json"
        steps = [self.python, str(ROOT / "bench" / "gpu_steps.py")]
        if self.tiny:
            # The committed reference is for the embedded model: make the tiny one here, on this CPU.
            model, reference = "models/target", self.work / "reference-steps.json"
            self.sh(steps + ["reference", "--repo", str(self.repo), "--model", model, "--out", str(reference)])
        else:
            # The committed target (carried), over the base this run converted from the same GGUF.
            carried = STAGE / "payload" / "models" / "target"
            model, reference = "models/committed_target", ROOT / "bench" / "gpu" / "reference-steps.json"
            shutil.copytree(carried, self.repo / model, dirs_exist_ok=True)
        self.sh(steps + ["compare", "--repo", str(self.repo), "--model", model, "--reference", str(reference),
                         "--out", str(out)])
        self.result["steps"] = json.loads(out.read_text())

    def part_c(self) -> None:
        results = self.out / "results"
        results.mkdir(exist_ok=True)
        self.result["throughput"] = []
        for i, (arch, mode) in enumerate(THROUGHPUT):
            if self.left() < 60:
                self.say(f"throughput {arch} {mode}: skipped, {self.left():.0f} s left")
                continue
            path = results / f"throughput-{arch}-{mode}.json"
            args = [self.python, str(ROOT / "bench" / "throughput.py"), "--arch", arch, "--json", str(path)]
            args += (["--full"] if mode == "full" else []) + ([] if i == 0 else ["--no-eval"])
            self.sh(args, cwd=ROOT)
            self.result["throughput"] += json.loads(path.read_text())["rows"]

    def part_d(self) -> None:
        rows = self.result["study"] = []
        for method in STUDY:
            if self.left() < 90:
                self.say(f"study: {method} skipped, {self.left():.0f} s left")
                continue
            set_params(self.repo / "params.yaml", {"method": method})
            start = time.monotonic()
            self.sh([self.python, "-m", "dvc", "repro"])
            summary = json.loads((self.repo / "metrics" / "summary.json").read_text())
            rows.append({"method": method, "seconds": round(time.monotonic() - start, 1),
                         **{k: summary["unlearned"].get(k) for k in ("forget_quality", "forget_rouge_l_recall",
                                                                       "model_utility", "privleak")},
                         "robustness_score": summary.get("robustness_score")})
            self.say(f"study {method}: {rows[-1]}")


def headline_values(summary: dict) -> dict[str, tuple[float, list | None]]:
    """{name: (value, its 95% interval or None)} of every number in a summary.json."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, dict) and key not in ("versions", "checks", "machine"):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{key}.{sub}"] = (float(v), value.get(f"{sub}_ci95"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = (float(value), None)
    for key, value in (summary.get("checks") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"checks.{key}"] = (float(value), None)
    return out


def compare_headlines(cpu: dict, here: dict) -> list[dict]:
    """Each headline of this run beside the committed CPU run's, with the difference and whether
    it falls inside the CPU value's 95% interval (a difference inside it is noise, not a change)."""
    a, b = headline_values(cpu), headline_values(here)
    rows = []
    for key in sorted(set(a) | set(b)):
        (va, ci), vb = a.get(key, (math.nan, None)), b.get(key, (math.nan, None))[0]
        inside = None if not ci or not math.isfinite(vb) else bool(ci[0] <= vb <= ci[1])
        rows.append({"metric": key, "cpu": va, "here": vb, "diff": vb - va, "cpu_ci95": ci, "inside_ci95": inside})
    return rows


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def report(r: dict) -> str:
    lines = [f"# GPU check{' (--tiny)' if r.get('tiny') else ''}", "", f"device: {r.get('device')}",
             f"versions: {r.get('versions')}", f"part seconds: {r.get('part_seconds')}", f"errors: {r['errors'] or 'none'}"]
    if "pipeline" in r:
        p = r["pipeline"]
        lines += ["", "## a. dvc repro", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in p["stages"].items()] + [f"| total | {p['total_s']} |", "",
                  "| headline | CPU (committed) | here | difference | CPU 95% CI | inside |", "|---|---|---|---|---|---|"]
        lines += [f"| {h['metric']} | {fmt(h['cpu'])} | {fmt(h['here'])} | {fmt(h['diff'])} | "
                  f"{fmt(h['cpu_ci95'] and [round(x, 4) for x in h['cpu_ci95']])} | {fmt(h['inside_ci95'])} |"
                  for h in p["headlines"]]
    if "steps" in r:
        s = r["steps"]
        lines += ["", f"## b. one step per method (same weights as the reference: {fmt(s.get('same_weights'))})", "",
                  "| method | quantity | precision | CPU fp32 | here | relative difference | tolerance | ok |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {x['method']} | {x['quantity']} | {x['precision']} | {fmt(x['cpu_fp32'])} | {fmt(x['here'])} | "
                  f"{x['rel_diff']:.2e} | {x['tolerance']:g} | {fmt(x['ok'])} |" for run in s["runs"] for x in run["rows"]]
    if r.get("throughput"):
        lines += ["", "## c. throughput", "", "| arch | mode | method | precision | batch x seq | tokens/s | MFU | peak GiB |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {t.get('arch')} | {t.get('mode')} | {t.get('method') or t['phase']} | {t['precision']} | "
                  f"{t.get('batch')} x {t.get('seq_len')} | {t['tokens_per_s']:,.0f} | {fmt(t.get('mfu'))} | "
                  f"{fmt(t.get('peak_mem_gib'))} |" for t in r["throughput"]]
    if r.get("study"):
        keys = list(r["study"][0])
        lines += ["", "## d. method study", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in r["study"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny random model, one epoch, parts a and b (CPU)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / ".gpu" / "out"))
    ap.add_argument("--budget", type=float, default=540, help="seconds for all parts (c and d stop early)")
    ap.add_argument("--parts", default=None, help="which parts, e.g. ab (default abcd; --tiny: ab)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget, args.tiny)
    import torch

    from unlearn_lab.environment import installed

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    check.result.update(device=name, torch=torch.__version__, versions=installed(), budget_s=args.budget)
    parts = args.parts or ("ab" if args.tiny else "abcd")
    for key in parts:
        check.part(key, getattr(check, f"part_{key}"))
    check.say(report(check.result))
    sys.exit(1 if check.result["errors"] else 0)


if __name__ == "__main__":
    main()
