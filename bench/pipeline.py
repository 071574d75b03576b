"""Each stage's wall time in a true cold `dvc repro -f`: a fresh clone of the repository at HEAD,
an empty DVC cache, every stage forced to run (a stage whose outputs all live in git, such as
represent's metrics, would otherwise be skipped when its inputs come out bit-identical), the
project's environment (.venv). Prints a table of stage, seconds and share, from the moment DVC
announces a stage to the next announcement (so process start and imports count, as a user waits
for them), and the total.

    python bench/pipeline.py                  # clone HEAD into a temporary folder, time, delete it
    python bench/pipeline.py --keep /tmp/run  # keep the clone (its outputs and DVC cache)
    python bench/pipeline.py --json times.json
    make time                                 # the same, writing bench/results/pipeline-cpu.json

The JSON: {"stages": {stage: seconds}, "total_s", "forget_questions", "holdout_questions",
"precision" (hardware.precision as the run resolved it), "cpu", "cores", "commit"}.

It runs the real pipeline on this machine: about half an hour on 2 CPU cores.
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


def timed_repro(repo: Path, env: dict, command=("dvc", "repro"), log=None) -> tuple[list[tuple[str, float]], float]:
    """(stage, seconds) in the order DVC ran them, and the total, streaming DVC's output to `log`."""
    log = log or sys.stdout
    start = time.perf_counter()
    times: list[tuple[str, float]] = []
    current, since = None, start
    proc = subprocess.Popen(list(command), cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        log.write(line)
        match = STAGE.match(line)
        if match:
            now = time.perf_counter()
            if current:
                times.append((current, now - since))
            current, since = match.group(1), now
    if proc.wait():
        raise SystemExit(f"error: dvc repro failed (exit {proc.returncode}); the times so far: {times}")
    end = time.perf_counter()
    if current:
        times.append((current, end - since))
    return times, end - start


def table(times: list[tuple[str, float]], total: float) -> str:
    width = max(len(name) for name, _ in times + [("stage", 0)])
    lines = [f"{'stage':<{width}}  seconds  share", f"{'-' * width}  -------  -----"]
    lines += [f"{name:<{width}}  {sec:7.1f}  {sec / total:5.1%}" for name, sec in times]
    lines.append(f"{'total':<{width}}  {total:7.1f}  ({total / 60:.1f} min)")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it")
    ap.add_argument("--json", type=Path, help="also write the times here")
    args = ap.parse_args()
    venv = ROOT / ".venv" / "bin"
    if not venv.exists():
        sys.exit(f"error: {venv}: no environment; run `make install` first")
    if args.keep and args.keep.exists():
        sys.exit(f"error: {args.keep}: already exists")
    repo = args.keep or Path(tempfile.mkdtemp(prefix="unlearn-lab-bench-")) / "repo"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
        # the clone's own source, not the editable install's checkout
        env["PYTHONPATH"] = str(repo / "src")
        times, total = timed_repro(repo, env, ("dvc", "repro", "-f"))
        facts = run_facts(repo, env)
    finally:
        if not args.keep:
            shutil.rmtree(repo.parent, ignore_errors=True)
    print(table(times, total))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"stages": {k: round(v, 1) for k, v in times}, "total_s": round(total, 1),
                                         **facts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
