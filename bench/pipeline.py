"""Each stage's wall time in a true cold `dvc repro -f`: a fresh clone of the repository at HEAD,
an empty DVC cache, every stage forced to run (a stage whose outputs all live in git, such as
represent's metrics, would otherwise be skipped when its inputs come out bit-identical), the
project's environment (.venv). Prints a table of stage, seconds and share, from the moment DVC
announces a stage to the next announcement (so process start and imports count, as a user waits
for them), and the total; then the same for an experiment on that run (`dvc exp run -S
method=simnpo`: what a user does next, re-running only what the method changes), its total
`experiment_s`.

Beside each stage's seconds: its useful FLOPs, from the tokens its models' forward passes
processed (2 N per token, 6 N per trained token, N the weights that multiply activations;
unlearn_lab.timing.work, logged by every stage to the file UNLEARN_LAB_WORK_LOG names), and their
rate as a share of this machine's fp32 matmul peak, measured in the same run (the best of large
square float32 matmuls on every core, before the pipeline). A commit whose stages do not log
their work has no FLOPs column.

    python bench/pipeline.py                  # clone HEAD into a temporary folder, time, delete it
    python bench/pipeline.py --commit d599362 # another commit (the same script times it)
    python bench/pipeline.py --keep /tmp/run  # keep the clone (its outputs and DVC cache)
    python bench/pipeline.py --json times.json --no-experiment
    python bench/pipeline.py --cache .dvc/cache --save-run .   # the timed run becomes this checkout's
    make time                                 # writing bench/results/pipeline-cpu.json

The JSON: {"stages": {stage: seconds}, "total_s", "experiment": {"command", "stages", "total_s"},
"experiment_s", "flops": {stage: FLOPs}, "peak_gflops", "utilization": {stage: share of peak},
"utilization_total", "forget_questions", "holdout_questions", "precision" (hardware.precision as
the run resolved it), "cpu", "cores", "commit"}.

It runs the real pipeline on this machine: about half an hour on 2 CPU cores, and the experiment.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import cpu_name  # bench/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"^Running stage '([^']+)'")


def timed_repro(repo: Path, env: dict, command=("dvc", "repro"), log=None,
                spans: list | None = None) -> tuple[list[tuple[str, float]], float]:
    """(stage, seconds) in the order DVC ran them, and the total, streaming DVC's output to `log`;
    `spans` (a list) receives (stage, wall-clock start, end) for attributing the stages' work logs."""
    log = log or sys.stdout
    start = time.perf_counter()
    times: list[tuple[str, float]] = []
    current, since = None, start
    spans = spans if spans is not None else []
    proc = subprocess.Popen(list(command), cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        log.write(line)
        match = STAGE.match(line)
        if match:
            now = time.perf_counter()
            if current:
                times.append((current, now - since))
                spans.append((current, time.time() - (now - since), time.time()))
            current, since = match.group(1), now
    if proc.wait():
        raise SystemExit(f"error: {' '.join(command)} failed (exit {proc.returncode}); the times so far: {times}")
    end = time.perf_counter()
    if current:
        times.append((current, end - since))
        spans.append((current, time.time() - (end - since), time.time()))
    return times, end - start


PEAK = """
import time, torch
best = 0.0
for n in (1024, 2048, 3072):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    for _ in range(5):
        t = time.perf_counter(); torch.mm(a, b); s = time.perf_counter() - t
        best = max(best, 2 * n ** 3 / s / 1e9)
print(best)
"""


def peak_gflops(python: Path) -> float:
    """This machine's fp32 matmul peak (GFLOP/s): the best of large square matmuls on every core,
    in a process of its own (as a stage runs)."""
    return float(subprocess.run([str(python), "-c", PEAK], capture_output=True, text=True, check=True).stdout)


def stage_flops(log: Path, spans: list[tuple[str, float, float]]) -> dict[str, float]:
    """Each stage's FLOPs from the work log: a line belongs to the stage whose span holds its end."""
    flops: dict[str, float] = {}
    if not log.exists():
        return flops
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        for stage, begin, end in spans:
            if begin <= entry["end"] <= end + 1.0:
                flops[stage] = flops.get(stage, 0.0) + entry["flops"]
                break
    return flops


def share(flops: float, seconds: float, peak: float) -> float:
    """FLOPs over seconds as a share of the peak (GFLOP/s)."""
    return flops / seconds / (peak * 1e9)


def utilization(times: list[tuple[str, float]], flops: dict[str, float], peak: float) -> dict[str, float]:
    return {name: round(share(flops[name], sec, peak), 3) for name, sec in times if name in flops and sec > 0}


def table(times: list[tuple[str, float]], total: float, flops: dict[str, float] | None = None,
          peak: float | None = None) -> str:
    flops = flops or {}
    width = max(len(name) for name, _ in times + [("stage", 0)])
    lines = [f"{'stage':<{width}}  seconds  share   GFLOP  of peak", f"{'-' * width}  -------  -----  ------  -------"]
    for name, sec in times:
        work = f"{flops[name] / 1e9:6.0f}  {share(flops[name], sec, peak):7.1%}" if name in flops and peak else ""
        lines.append(f"{name:<{width}}  {sec:7.1f}  {sec / total:5.1%}  {work}".rstrip())
    done = sum(flops.values())
    whole = f"  {done / 1e9:6.0f}  {share(done, total, peak):7.1%}" if flops and peak else ""
    lines.append(f"{'total':<{width}}  {total:7.1f}  ({total / 60:.1f} min){whole}")
    return "\n".join(lines)


def run_facts(repo: Path, env: dict) -> dict:
    """What the timed run was: question counts, resolved precision, machine, commit."""
    def lines(name):
        return sum(1 for line in (repo / "data" / "processed" / name).read_text().splitlines() if line.strip())

    precision = subprocess.run(
        [sys.executable, "-c", "from unlearn_lab.models import hardware; from unlearn_lab.settings import load_settings; "
         "print(hardware.resolve(load_settings().hardware).precision)"],
        cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    return {"forget_questions": lines("forget.jsonl"), "holdout_questions": lines("holdout.jsonl"),
            "precision": precision, "cpu": cpu_name(), "cores": os.cpu_count(), "commit": commit}


def save_run(repo: Path, dest: Path) -> None:
    """dvc.lock and the files the run rewrote that git tracks, copied from the clone into `dest`."""
    # against HEAD: DVC's autostage has already staged dvc.lock and some outputs
    changed = subprocess.run(["git", "diff", "--name-only", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in changed:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    print(f"saved the run into {dest}: {len(changed)} files ({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it")
    ap.add_argument("--json", type=Path, help="also write the times here")
    ap.add_argument("--commit", default="HEAD", help="the commit to time (default HEAD)")
    ap.add_argument("--experiment", default="method=simnpo",
                    help="the -S of the experiment timed after the cold run (default method=simnpo)")
    ap.add_argument("--no-experiment", action="store_true", help="time the cold run only")
    ap.add_argument("--cache", type=Path, help="the clone's DVC cache (default: its own, empty); a checkout's "
                    "cache here lets that checkout take the timed run's outputs (--save-run)")
    ap.add_argument("--save-run", type=Path, help="copy the cold run's dvc.lock and every file it rewrote that git "
                    "tracks (metrics, plots, ...) into this checkout, before the experiment; with --cache of the "
                    "checkout, `dvc checkout` there then brings the outputs: the committed run is the timed one")
    args = ap.parse_args()
    venv = ROOT / ".venv" / "bin"
    if not venv.exists():
        sys.exit(f"error: {venv}: no environment; run `make install` first")
    if args.keep and args.keep.exists():
        sys.exit(f"error: {args.keep}: already exists")
    repo = args.keep or Path(tempfile.mkdtemp(prefix="unlearn-lab-bench-")) / "repo"
    work_log = repo.parent / f"{repo.name}-work.jsonl"
    experiment = None
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        subprocess.run(["git", "checkout", "-q", args.commit], cwd=repo, check=True)
        env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
               "UNLEARN_LAB_WORK_LOG": str(work_log)}
        # the clone's own source, not the editable install's checkout
        env["PYTHONPATH"] = str(repo / "src")
        if args.cache:
            subprocess.run(["dvc", "cache", "dir", "--local", str(args.cache.resolve())], cwd=repo, env=env, check=True)
        peak = peak_gflops(venv / "python")
        spans: list = []
        times, total = timed_repro(repo, env, ("dvc", "repro", "-f"), spans=spans)
        flops = stage_flops(work_log, spans)
        facts = run_facts(repo, env)
        if args.save_run:
            save_run(repo, args.save_run)
        if not args.no_experiment:
            command = ("dvc", "exp", "run", "-S", args.experiment)
            work_log.unlink(missing_ok=True)
            exp_spans: list = []
            exp_times, exp_total = timed_repro(repo, env, command, spans=exp_spans)
            exp_flops = stage_flops(work_log, exp_spans)
            experiment = {"command": " ".join(command), "stages": {k: round(v, 1) for k, v in exp_times},
                          "total_s": round(exp_total, 1), "flops": exp_flops,
                          "utilization": utilization(exp_times, exp_flops, peak)}
    finally:
        if not args.keep:
            shutil.rmtree(repo.parent, ignore_errors=True)
    print(table(times, total, flops, peak))
    print(f"fp32 matmul peak of this machine: {peak:.0f} GFLOP/s")
    if experiment:
        print(f"\nexperiment: {experiment['command']}")
        print(table(exp_times, exp_total, exp_flops, peak))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"stages": {k: round(v, 1) for k, v in times}, "total_s": round(total, 1),
                  "flops": flops, "peak_gflops": round(peak, 1), "utilization": utilization(times, flops, peak),
                  "utilization_total": round(share(sum(flops.values()), total, peak), 3) if flops else None,
                  **facts}
        if experiment:
            result.update(experiment=experiment, experiment_s=experiment["total_s"])
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
