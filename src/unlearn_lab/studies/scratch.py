"""Study runs in a scratch clone of this repository brought to its HEAD commit, so that every
result can name the commit whose code produced it (scripts/documents_study.py, scripts/scale.py,
bench/gpu_check.py), and params.yaml set there as `dvc exp run -S` would."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import UserError

# What a run of the pipeline reads from git: an uncommitted change here would not be in HEAD, so
# the study would run other code than the commit its results name.
PIPELINE_PATHS = ("dvc.yaml", "params.yaml", "versions.yaml", "machine.yaml", ".dvcignore", "pyproject.toml", "src", "stages",
                  "data/raw", "accelerate")


def git(args: list[str], cwd: str | Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"{cwd}: git {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def head_commit(root: str | Path) -> str:
    return git(["rev-parse", "HEAD"], root).strip()


def uncommitted(root: str | Path, paths=PIPELINE_PATHS) -> list[str]:
    """Tracked files under `paths` whose workspace or index differs from HEAD."""
    out = git(["status", "--porcelain", "--untracked-files=no", "--", *paths], root)
    return sorted(line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip())


def require_committed(root: str | Path, paths=PIPELINE_PATHS) -> str:
    """HEAD's full hash; UserError when a file the study runs has uncommitted changes."""
    commit = head_commit(root)
    dirty = uncommitted(root, paths)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise UserError(f"{Path(root).resolve()}: uncommitted changes to {shown}: the study runs the committed "
                        f"HEAD ({commit[:7]}), so commit or stash them first")
    return commit


def clone_at_head(root: str | Path, workdir: str | Path, require_clean: bool = True,
                  keep_outputs: bool = True) -> str:
    """Bring `workdir` to `root`'s HEAD: cloned if missing, else fetched from `root`, checked out
    at that commit with local edits (params.yaml set by a previous study) discarded and untracked
    files removed. Returns the commit.

    `require_clean`: refuse when `root` has uncommitted pipeline changes (a study names HEAD as
    the code its results came from). `keep_outputs`: ignored files stay, so DVC re-uses the
    outputs whose deps still match; without it only the clone's own `.dvc/cache` stays (a
    re-run that must recompute everything)."""
    root, workdir = Path(root).resolve(), Path(workdir).resolve()
    commit = require_committed(root) if require_clean else head_commit(root)
    if workdir == root:
        raise UserError(f"{workdir}: the scratch clone cannot be the repository itself")
    if not workdir.exists() or not any(workdir.iterdir()):
        workdir.parent.mkdir(parents=True, exist_ok=True)
        git(["clone", "-q", "--no-checkout", str(root), str(workdir)], root)
    elif not (workdir / ".git").exists() or not _cloned_from(workdir, root):
        # never reset and clean a folder this did not clone: it could be someone's work (and
        # without its own .git, git would act on the repository around it)
        raise UserError(f"{workdir}: exists and is not a git clone of {root}; remove it or choose another folder")
    git(["fetch", "-q", str(root), "HEAD"], workdir)
    git(["checkout", "-q", "--force", "--detach", commit], workdir)
    git(["clean", "-q", "-f", "-d"] if keep_outputs else ["clean", "-q", "-ffdx", "-e", "/.dvc/cache"], workdir)
    if head_commit(workdir) != commit:
        raise UserError(f"{workdir}: HEAD is not {commit} after checkout")
    return commit


def _cloned_from(workdir: Path, root: Path) -> bool:
    done = subprocess.run(["git", "config", "remote.origin.url"], cwd=workdir, capture_output=True, text=True)
    return bool(done.stdout.strip()) and Path(done.stdout.strip()).resolve() == root


def set_params(path: str | Path, changes: dict) -> None:
    """Merge `changes` into the params file at `path`, keeping its comments. A key may be dotted
    (`data.benchmark`) or a nested dict (merged key by key)."""
    from ruamel.yaml import YAML

    def merge(dst, src):
        for key, value in src.items():
            *parents, last = str(key).split(".")
            place = dst
            for part in parents:
                place = place.setdefault(part, {})
            if isinstance(value, dict) and isinstance(place.get(last), dict):
                merge(place[last], value)
            else:
                place[last] = value

    path = Path(path)
    yaml = YAML()
    params = yaml.load(path.read_text(encoding="utf-8"))
    merge(params, changes)
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(params, fh)
