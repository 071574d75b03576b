"""`make verify`: does the committed run reproduce? Re-run the pipeline, or the stages named, in a
scratch clone of HEAD, then compare every output's hash with the committed `dvc.lock` and every
metric with the committed value, within the tolerances of `tolerances.py`; exit 1 on a mismatch.

How the re-run is made to recompute, never to restore:

- The clone (`VERIFY_DIR`, default `.scratch/verify`) has its own DVC cache (`.dvc/cache` is not
  in git, and `git clean` keeps only that folder between runs): nothing committed here can be
  checked out in place of a result. It is brought to HEAD each time (fetch, hard reset, clean),
  so no output of an earlier run stays in its work tree.
- Every stage runs with `dvc repro -f`: `--force` skips DVC's run cache (`run_stage` restores
  from it only without `force`), and DVC deletes a stage's outputs before running its command,
  so an output the command fails to write is missing, not stale. Without `--no-commit` the new
  outputs go into the clone's own cache, so `dvc diff`, `dvc checkout` and `dvc metrics diff`
  work in the clone afterwards, and DVC writes their hashes into the clone's `dvc.lock`, which is
  what is compared (DVC's own hashing: file md5, `.dir` md5 for folders).
- Named stages (`STAGES=...`) run one at a time, `dvc repro -f -s <stage>`, in pipeline order.
  Their inputs made by stages not named come from this repository's DVC cache, read as a
  local-only DVC remote of the clone (`dvc pull -r upstream <outputs>`): copied into the clone's
  cache, never linked to this one, and only the inputs, never the named stages' own outputs.

The committed side is the clone's HEAD (`git show HEAD:dvc.lock`, `HEAD:metrics/...`); the
re-run side its work tree. `--no-run` compares a clone already re-run (by hand, or by an
earlier `make verify`) without running anything.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ruamel.yaml import YAML

from ..errors import UserError
from .scratch import clone_at_head, git
from .tolerances import MODES, Sizes, compare_value, flatten, tolerance

EXPECTED_ACROSS = "differs: expected across machines (other CPU kernels); the metrics decide"


@dataclass
class Row:
    kind: str  # output | metric
    path: str
    key: str
    committed: object
    rerun: object
    diff: object
    tolerance: object
    status: str  # ok | MISMATCH | differs | skipped
    note: str = ""


def _run(args: list[str], cwd: Path, env: dict | None = None, quiet: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=quiet)


def scratch_clone(root: Path, dest: Path) -> str:
    """Clone `root`'s HEAD into `dest`, or bring an earlier clone there to it, keeping nothing
    but the clone's own DVC cache (every output is recomputed); the commit."""
    return clone_at_head(root, dest, require_clean=False, keep_outputs=False)


def read_lock(text: str) -> dict[str, dict]:
    """{stage: {"outs": {path: md5}, "deps": [path]}} of a dvc.lock, in its (pipeline) order."""
    data = YAML(typ="safe").load(text) or {}
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise UserError("dvc.lock: no `stages` mapping")
    out = {}
    for name, entry in stages.items():
        entry = entry or {}
        out[name] = {"outs": {o["path"]: o.get("md5") for o in entry.get("outs") or []},
                     "deps": [d["path"] for d in entry.get("deps") or []]}
    return out


def select(lock: dict[str, dict], names: list[str]) -> list[str]:
    """The lock's stages named (a foreach group's name means all its items), in pipeline order."""
    if not names:
        return list(lock)
    unknown = [n for n in names if not any(s == n or s.startswith(n + "@") for s in lock)]
    if unknown:
        raise UserError(f"STAGES: no stage {', '.join(map(repr, unknown))} in dvc.lock "
                        f"(stages: {', '.join(lock)})")
    return [s for s in lock if any(s == n or s.startswith(n + "@") for n in names)]


def upstream_inputs(lock: dict[str, dict], selected: list[str]) -> list[str]:
    """Outputs of stages not selected that the selected stages read: what a single-stage re-run
    needs from outside (uncached ones come with git, pulling them is a no-op)."""
    made_elsewhere = {path for name, st in lock.items() if name not in selected for path in st["outs"]}
    needed = []
    for name in selected:
        for dep in lock[name]["deps"]:
            owner = next((o for o in made_elsewhere if dep == o or dep.startswith(o.rstrip("/") + "/")), None)
            if owner and owner not in needed:
                needed.append(owner)
    return needed


def metric_files(lock: dict[str, dict], selected: list[str]) -> list[str]:
    """The selected stages' metrics: their JSON outputs under metrics/ (where dvc.yaml's
    `metrics:` entries are)."""
    return [p for name in selected for p in lock[name]["outs"] if p.startswith("metrics/") and p.endswith(".json")]


def compare_outputs(committed: dict[str, dict], rerun: dict[str, dict], selected: list[str], mode: str) -> list[Row]:
    """One row per output of the selected stages: the committed hash against the re-run's."""
    rows = []
    for name in selected:
        for path, md5 in committed[name]["outs"].items():
            new = rerun.get(name, {}).get("outs", {}).get(path)
            if new == md5:
                rows.append(Row("output", path, name, md5, new, "", "exact", "ok"))
            elif new is None:
                rows.append(Row("output", path, name, md5, None, "", "exact", "MISMATCH", "not in the re-run's dvc.lock"))
            elif path.startswith("metrics/") and path.endswith(".json"):
                rows.append(Row("output", path, name, md5, new, "", "exact", "differs",
                                "holds timings; its metrics are compared by value"))
            elif mode == "cross-machine":
                rows.append(Row("output", path, name, md5, new, "", "exact", "differs", EXPECTED_ACROSS))
            else:
                rows.append(Row("output", path, name, md5, new, "", "exact", "MISMATCH"))
    return rows


def compare_metrics(committed: dict[str, object], rerun: dict[str, object | None], mode: str,
                    sizes: Sizes | None = None) -> list[Row]:
    """One row per flattened metric of each committed file; `rerun[path]` None: file missing.
    `sizes` (set sizes for the rank-based tolerances) defaults to those in `committed`."""
    flats = {path: flatten(obj) for path, obj in committed.items()}
    sizes = sizes or Sizes.from_metrics(flats)
    rows = []
    for path, flat in flats.items():
        if rerun.get(path) is None:
            rows.append(Row("metric", path, "", "", None, "", "", "MISMATCH", "not written by the re-run"))
            continue
        new = flatten(rerun[path])
        for key in list(flat) + [k for k in new if k not in flat]:
            tol, why = tolerance(key, flat.get(key, new.get(key)), flat, sizes, mode, path)
            a, b = flat.get(key, "<missing>"), new.get(key, "<missing>")
            if tol == "skip":
                rows.append(Row("metric", path, key, a, b, "", "skip", "skipped", why))
            elif key not in flat or key not in new:
                rows.append(Row("metric", path, key, a, b, "", tol, "MISMATCH",
                                "missing from the " + ("re-run" if key in flat else "commit")))
            else:
                diff, ok = compare_value(a, b, tol)
                rows.append(Row("metric", path, key, a, b, "" if diff is None else diff, tol,
                                "ok" if ok else "MISMATCH", "" if ok else why))
    return rows


def _json_at_head(clone: Path, path: str):
    done = _run(["git", "show", f"HEAD:{path}"], clone)
    return json.loads(done.stdout) if done.returncode == 0 else None


def compare_clone(clone: Path, names: list[str], mode: str) -> list[Row]:
    """Compare a re-run clone's work tree with its HEAD: the selected stages' outputs and metrics."""
    committed_lock = read_lock(git(["show", "HEAD:dvc.lock"], clone))
    lock_file = clone / "dvc.lock"
    if not lock_file.exists():
        raise UserError(f"{lock_file}: missing; is {clone} a re-run clone of this repository?")
    rerun_lock = read_lock(lock_file.read_text(encoding="utf-8"))
    selected = select(committed_lock, names)
    every_metric = {p: _json_at_head(clone, p) for p in metric_files(committed_lock, list(committed_lock))}
    sizes = Sizes.from_metrics({p: flatten(o) for p, o in every_metric.items() if o is not None})
    committed, rerun = {}, {}
    for path in metric_files(committed_lock, selected):
        if every_metric.get(path) is None:
            continue  # not committed: nothing to compare with
        committed[path] = every_metric[path]
        file = clone / path
        try:
            rerun[path] = json.loads(file.read_text(encoding="utf-8")) if file.exists() else None
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return compare_outputs(committed_lock, rerun_lock, selected, mode) + compare_metrics(committed, rerun, mode, sizes)


def _environment(clone: Path) -> dict:
    """The stages call `python`: this environment's first on PATH, the clone's own source."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(clone / "src"), "DVC_NO_ANALYTICS": "1"}


def _dvc() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def rerun(root: Path, clone: Path, names: list[str]) -> None:
    """Run the pipeline (no names) or the named stages in the clone, forced (module docstring)."""
    env, dvc = _environment(clone), _dvc()
    if not names:
        if subprocess.run([dvc, "repro", "-f"], cwd=clone, env=env).returncode:
            raise RerunFailed("dvc repro -f failed (above)")
        return
    lock = read_lock((clone / "dvc.lock").read_text(encoding="utf-8"))
    selected = select(lock, names)
    needed = upstream_inputs(lock, selected)
    if needed:
        cache = _run([dvc, "cache", "dir"], root, env).stdout.strip()
        _run([dvc, "remote", "add", "--local", "--force", "upstream", cache], clone, env)
        pulled = _run([dvc, "pull", "-q", "-r", "upstream", *needed], clone, env)
        if pulled.returncode:
            raise UserError(f"STAGES: {', '.join(selected)} need {', '.join(needed)}, and this repository's DVC cache "
                            f"({cache}) does not hold them all: run `make repro` here first, or verify the whole pipeline")
    for name in selected:
        if subprocess.run([dvc, "repro", "-f", "-s", name], cwd=clone, env=env).returncode:
            raise RerunFailed(f"dvc repro -f -s {name} failed (above)")


class RerunFailed(Exception):
    """The re-run itself failed: the committed numbers were not reproduced."""


def _cell(value, digits: int = 10) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def table(rows: list[Row]) -> str:
    """Aligned columns, one line per row: values to 10 digits, difference and tolerance to 3."""
    head = [f.name for f in fields(Row)]
    short = {head.index("diff"), head.index("tolerance")}
    cells = [head] + [[_cell(v, 3 if i in short else 10) for i, v in enumerate(astuple(r))] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in cells)


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow([f.name for f in fields(Row)])
        out.writerows([[repr(v) if isinstance(v, float) else v for v in astuple(r)] for r in rows])


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="*", default=[], help="re-run only these (foreach group names allowed)")
    ap.add_argument("--dir", type=Path, default=Path(".scratch/verify"), help="the scratch clone")
    ap.add_argument("--tolerance", choices=MODES, default="cross-machine",
                    help="same-machine: exact (hashes too); cross-machine: the tolerances of docs/reproducibility.md")
    ap.add_argument("--no-run", action="store_true", help="compare the clone in --dir as it is; run nothing")
    ap.add_argument("--csv", type=Path, help="where the table goes as CSV (default <dir>/verify.csv)")
    args = ap.parse_args(argv)
    root = (root or Path.cwd()).resolve()
    clone = args.dir if args.dir.is_absolute() else root / args.dir
    try:
        if not args.no_run:
            commit = scratch_clone(root, clone)
            print(f"== re-running {' '.join(args.stages) or 'the whole pipeline'} at {commit[:10]} in {clone}", flush=True)
            if _run(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout.strip():
                print("   (uncommitted changes here are not part of HEAD: not verified)")
            rerun(root, clone, args.stages)
        elif not (clone / ".git").exists():
            raise UserError(f"--no-run: {clone} is not a clone (run `make verify` first, or give --dir)")
        rows = compare_clone(clone, args.stages, args.tolerance)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RerunFailed as exc:
        print(f"verify FAILED: {exc}; nothing compared", file=sys.stderr)
        return 1
    print(table(rows))
    out = args.csv or clone / "verify.csv"
    write_csv(rows, out)
    bad = [r for r in rows if r.status == "MISMATCH"]
    differs = sum(r.status == "differs" for r in rows)
    print(f"\n{len(rows)} rows ({args.tolerance}): {sum(r.status == 'ok' for r in rows)} ok, {len(bad)} MISMATCH, "
          f"{differs} differing outputs that do not decide, {sum(r.status == 'skipped' for r in rows)} skipped; "
          f"table in {out}")
    for r in bad:
        print(f"MISMATCH {r.path} {r.key}: {_cell(r.committed)} vs {_cell(r.rerun)} (tolerance {_cell(r.tolerance)}) {r.note}")
    return 1 if bad else 0
