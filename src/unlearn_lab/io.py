"""Atomic, deterministic file output: a stage that fails must leave no half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError


def _dump(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _stale(path):  # from a process killed mid-write
        _remove(leftover)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj) -> None:
    write_text_atomic(path, json_text(obj))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    write_text_atomic(path, jsonl_text(records))


def _open_input(path: Path):
    """Open a stage input; a missing one is the user's to fix (a stage not run), not a crash."""
    try:
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: not found (run the stage that writes it first, e.g. `dvc repro`)") from None


def read_json(path: str | Path):
    path = Path(path)
    with _open_input(path) as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    out = []
    with _open_input(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return out


def _stale(path: Path) -> list[Path]:
    """Scratch copies of `path` that a killed process left behind (mkstemp/mkdtemp names)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _recover(path: Path) -> None:
    """Undo what a process killed while committing `path` left: put a backup back where the
    output is missing, drop it where the new output made it in, and clear scratch copies."""
    backup = path.with_name(f".{path.name}.old")
    if backup.exists() or backup.is_symlink():
        if path.exists() or path.is_symlink():
            _remove(backup)
        else:
            os.replace(backup, path)
    for leftover in _stale(path):
        _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _ByPath(dict):
    def __getitem__(self, key):
        return super().__getitem__(str(key))


@contextlib.contextmanager
def staged_outputs(files: Iterable[str | Path] = (), dirs: Iterable[str | Path] = ()
                   ) -> Iterator[dict[str, Path]]:
    """All-or-nothing outputs: yield {target: scratch path} for each file and directory; the
    scratch paths replace their targets together only when the block completes.

    Scratch paths sit next to their targets (same filesystem, so moving is a rename). A failure
    in the block leaves every target untouched. While committing, each old target is renamed to
    a backup first and put back if a later rename fails; a process killed in that window of a
    few renames is repaired by the next call for the same targets (see `_recover`).
    Keys are the targets as given, as strings; a Path key finds the same entry.
    """
    files, dirs = [Path(f) for f in files], [Path(d) for d in dirs]
    staged: dict[str, Path] = _ByPath()
    scratch: list[Path] = []
    try:
        for target in files + dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            _recover(target)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
            scratch.append(tmp)
            # A file is staged inside its own scratch directory, so it keeps its name.
            staged[str(target)] = tmp if target in dirs else tmp / target.name
        yield staged
        for target in files:
            if not staged[str(target)].is_file():
                raise FileNotFoundError(f"{target}: the stage did not write this output")
        _commit([(staged[str(t)], t) for t in files + dirs])
    finally:
        for tmp in scratch:
            _remove(tmp)


def _commit(moves: list[tuple[Path, Path]]) -> None:
    done: list[tuple[Path, Path | None]] = []
    try:
        for new, target in moves:
            backup = None
            if target.exists() or target.is_symlink():
                backup = target.with_name(f".{target.name}.old")
                _remove(backup)
                os.replace(target, backup)
            done.append((target, backup))
            os.replace(new, target)
    except BaseException:
        for target, backup in reversed(done):
            if backup is not None:
                _remove(target)
                os.replace(backup, target)
            else:
                _remove(target)
        raise
    for _, backup in done:
        if backup is not None:
            _remove(backup)


def write_files_atomic(texts: dict[str | Path, str]) -> None:
    """Write several text files all-or-nothing (see `staged_outputs`)."""
    with staged_outputs(files=list(texts)) as staged:
        for target, text in texts.items():
            with open(staged[str(Path(target))], "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)


def jsonl_text(records: Iterable[dict]) -> str:
    return "".join(_dump(r) + "\n" for r in records)


def json_text(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `path` only if the block completes."""
    with staged_outputs(dirs=[path]) as staged:
        yield staged[str(Path(path))]


@contextlib.contextmanager
def discarded_outputs(files: Iterable[str | Path] = (), dirs: Iterable[str | Path] = ()
                      ) -> Iterator[dict[str, Path]]:
    """The same mapping as `staged_outputs`, into a scratch folder that is thrown away: for the
    processes of a multi-GPU run other than rank 0, which train but must not write."""
    files, dirs = list(files), list(dirs)
    with tempfile.TemporaryDirectory(prefix="unlearn-lab-discard-") as tmp:
        staged = _ByPath()
        for i, target in enumerate(files + dirs):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            staged[str(target)] = folder / Path(target).name if i < len(files) else folder
        yield staged
