"""Wall time of a tiny-random sweep on a local Ray cluster with 1 and with 2 workers.

    PYTHONPATH=src python bench/sweep_speed.py            # 6 trials: ga, gd, npo x two lrs

It builds the tiny-random project the end-to-end test uses (reproduced once and committed, so the
trials restore the fine-tunes from DVC's run cache), then runs the same 6 trials on a fresh local
Ray cluster of each size, removing the experiments in between. Prints seconds per cluster size.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_pipeline_e2e import make_repo, run  # noqa: E402  (the tiny project of the e2e test)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--methods", nargs="+", default=["ga", "gd", "npo"])
    ap.add_argument("--lrs", nargs="+", default=["null", "1e-3"])
    args = ap.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    import ray

    from unlearn_lab.studies.sweep import grid, sweep

    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        repo, _ = make_repo(Path(tmp) / "repo")
        (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "\n.sweep/\n")
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "reproduced"], repo)
        print(f"tiny project reproduced in {time.time() - start:.0f} s", flush=True)
        trials = grid(args.methods, args.lrs, ["1"])
        rows = []
        for workers in args.workers:
            subprocess.run(["dvc", "exp", "remove", "--all-commits"], cwd=repo, capture_output=True)
            (repo / ".sweep" / "finished.json").unlink(missing_ok=True)
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            start = time.time()
            result = sweep(trials, repo, log=lambda line: print(f"  {line}", flush=True))
            seconds = time.time() - start
            ray.shutdown()
            assert len(result["finished"]) == len(trials), result["failed"]
            per_trial = sorted(r["seconds"] for r in result["finished"])
            rows.append((workers, seconds, per_trial[len(per_trial) // 2]))
            print(f"{workers} worker(s): {len(trials)} trials in {seconds:.0f} s", flush=True)
    print("\n| workers | trials | wall s | median trial s |\n|---|---|---|---|")
    for workers, seconds, median in rows:
        print(f"| {workers} | {len(trials)} | {seconds:.0f} | {median:.0f} |")


if __name__ == "__main__":
    main()
