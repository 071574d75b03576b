"""A parameter grid as `dvc exp run` trials on a Ray cluster: every GPU (or a share of the CPU
cores) of one machine or of many, each trial in a workspace of its own.

    python -m unlearn_lab.studies.sweep --methods ga npo --lrs null 1e-4 --epochs 5 --seeds 42 43 \\
        -S methods.npo.beta=0.1,0.2

Each trial clones the driver's repository at its commit into a fresh folder, points the clone's
DVC cache at the driver's (so fine-tunes are restored from DVC's run cache, not recomputed, where
the filesystem is shared), runs `dvc exp run -S ...` there and pushes the experiment back with
`dvc exp push` (to the driver's repository by default, or to a git remote the driver then pulls
from). A failed trial is retried once in a new workspace, then listed with its error. Finished
trials are recorded in `.sweep/finished.json` by their settings, so running the sweep again skips
them. Ray is the optional extra `pip install .[cluster]`; `RAY_ADDRESS` joins an existing cluster.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

STATE = Path(".sweep") / "finished.json"


def grid(methods=(), lrs=(), epochs=(), seeds=(), sets=()) -> list[dict[str, str]]:
    """Every combination as ordered `-S` overrides; an empty axis keeps params.yaml's value.
    `sets` are `key=v1,v2` strings, one more axis each (the syntax of `make sweep`)."""
    axes = [("method", list(methods)), ("lr", list(lrs)), ("unlearn.epochs", list(epochs)), ("seed", list(seeds))]
    for item in sets:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SystemExit(f"error: -S {item!r}: expected key=v1,v2")
        axes.append((key, values.split(",")))
    axes = [(key, [str(v) for v in values]) for key, values in axes if values]
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def trial_key(overrides: dict[str, str], commit: str) -> str:
    """The identity of a trial: its settings and the code they run on."""
    text = json.dumps({"commit": commit, "set": sorted(overrides.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tool_env() -> dict:
    """Stage commands call `python` and `dvc`: this interpreter's environment first, as `make` does."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(cmd: list[str], cwd, env=None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: " + " | ".join(tail))
    return proc.stdout


def run_trial(origin: str, commit: str, overrides: dict[str, str], name: str, root: str, cache: str | None,
              push_to: str, command: list[str] | None = None) -> dict:
    """One trial in a new workspace under `root`; returns where it ran and how long it took.
    `command` replaces `dvc exp run` (tests use it to fail on purpose)."""
    workspace = Path(root) / f"{name}-{uuid.uuid4().hex[:8]}"
    start = time.time()
    env = _tool_env()
    _run(["git", "clone", "--quiet", origin, str(workspace)], root)
    try:
        _run(["git", "checkout", "--quiet", commit], workspace)
        # each trial's own git identity: `dvc exp run` commits the experiment
        for key, value in (("user.email", "sweep@unlearn-lab"), ("user.name", "unlearn-lab sweep")):
            _run(["git", "config", key, value], workspace)
        if cache:
            _run(["dvc", "cache", "dir", "--local", cache], workspace, env)
        sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
        _run(command or ["dvc", "exp", "run", "--name", name, *sets], workspace, env)
        _run(["dvc", "exp", "push", "--no-cache", push_to, name], workspace, env)
    except Exception as exc:
        # the failed workspace stays for a look; its path is in the error
        raise RuntimeError(f"{exc} (workspace {workspace})") from None
    shutil.rmtree(workspace, ignore_errors=True)
    return {"name": name, "workspace": str(workspace), "seconds": round(time.time() - start, 1),
            "host": os.uname().nodename}


def _resources(ray, cpus_per_trial: int) -> dict:
    """One GPU per trial where the cluster has GPUs (Ray sets CUDA_VISIBLE_DEVICES), else CPU cores."""
    if ray.cluster_resources().get("GPU", 0) > 0:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": cpus_per_trial}


def load_state(repo: Path) -> dict:
    path = repo / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(repo: Path, state: dict) -> None:
    path = repo / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def sweep(trials: list[dict[str, str]], repo: Path, push_to: str | None = None, workdir: Path | None = None,
          cpus_per_trial: int = 1, share_cache: bool = True, command: list[str] | None = None,
          retries: int = 1, log=print) -> dict:
    """Run `trials` on Ray; returns {"finished": [...], "skipped": [...], "failed": [...]}."""
    import ray

    repo = repo.resolve()
    commit = _run(["git", "rev-parse", "HEAD"], repo).strip()
    push_to = push_to or str(repo)
    workdir = (workdir or repo / ".sweep" / "workspaces").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cache = _run(["dvc", "cache", "dir"], repo, _tool_env()).strip() if share_cache else None
    state = load_state(repo)
    todo, skipped = [], []
    for overrides in trials:
        key = trial_key(overrides, commit)
        (skipped if key in state else todo).append((key, overrides))
    for key, overrides in skipped:
        log(f"[skip] {state[key]['name']} {_show(overrides)} (finished before)")
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False)
    remote = ray.remote(run_trial).options(**_resources(ray, cpus_per_trial), max_retries=0)
    attempts = {key: 0 for key, _ in todo}
    by_ref = {}

    def submit(key, overrides):
        attempts[key] += 1
        name = f"sweep-{key}"
        ref = remote.remote(str(repo), commit, overrides, name, str(workdir), cache, push_to, command)
        by_ref[ref] = (key, overrides)
        log(f"[queued] {name} {_show(overrides)} (attempt {attempts[key]}/{retries + 1})")

    for key, overrides in todo:
        submit(key, overrides)
    finished, failed = [], []
    while by_ref:
        done, _ = ray.wait(list(by_ref), num_returns=1)
        key, overrides = by_ref.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # the task's RuntimeError, wrapped by Ray
            error = str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]
            if attempts[key] <= retries:
                log(f"[retry] sweep-{key} failed: {error}")
                submit(key, overrides)
            else:
                log(f"[failed] sweep-{key} {_show(overrides)}: {error}")
                failed.append({"key": key, "set": overrides, "error": error, "attempts": attempts[key]})
            continue
        result.update(key=key, set=overrides, attempts=attempts[key])
        state[key] = {"name": result["name"], "set": overrides, "commit": commit}
        save_state(repo, state)
        finished.append(result)
        log(f"[done] {result['name']} {_show(overrides)} in {result['seconds']} s on {result['host']}")
    if push_to != str(repo) and finished:
        # The experiments went to a git remote: bring them into the driver's repository.
        _run(["dvc", "exp", "pull", "--no-cache", push_to, *[r["name"] for r in finished]], repo, _tool_env())
    log(f"sweep: {len(finished)} finished, {len(skipped)} skipped, {len(failed)} failed")
    for f in failed:
        log(f"  failed: {_show(f['set'])}: {f['error']}")
    return {"finished": finished, "skipped": [{"key": k, "set": o} for k, o in skipped], "failed": failed}


def _show(overrides: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--methods", nargs="*", default=[], help="methods (default: params.yaml's)")
    ap.add_argument("--lrs", nargs="*", default=[], help="learning rates; null: the method's own")
    ap.add_argument("--epochs", nargs="*", default=[], help="unlearn.epochs values")
    ap.add_argument("--seeds", nargs="*", default=[], help="seed values")
    ap.add_argument("-S", "--set", dest="sets", action="append", default=[], help="key=v1,v2: one more axis")
    ap.add_argument("--push-to", help="git remote (name or URL) the trials push to and the driver pulls "
                                      "from; default: this repository, for workers that share its filesystem")
    ap.add_argument("--workdir", type=Path, help="where trial workspaces go (default .sweep/workspaces)")
    ap.add_argument("--cpus-per-trial", type=int, default=1, help="CPU cores per trial when there is no GPU")
    ap.add_argument("--no-shared-cache", action="store_true", help="do not point trials at this DVC cache")
    args = ap.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("error: the Ray backend needs the cluster extra: pip install -e '.[cluster]'", file=sys.stderr)
        return 2
    trials = grid(args.methods, args.lrs, args.epochs, args.seeds, args.sets)
    print(f"sweep: {len(trials)} trials")
    result = sweep(trials, Path.cwd(), args.push_to, args.workdir, args.cpus_per_trial, not args.no_shared_cache)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
