"""Passages of README.md or a docs page (docs/studies.md) generated from a committed study CSV, between
marker comments, so the figures the page quotes cannot drift from the file they come from
(tests/test_studies.py checks)."""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UserError
from ..io import write_text_atomic


def begin_marker(name: str) -> str:
    return f"<!-- begin {name} "


def end_marker(name: str) -> str:
    return f"<!-- end {name} -->"


def _span(text: str, name: str, where: str) -> tuple[int, int]:
    """Start and end offsets of the block's body: after its begin line, up to its end line."""
    begin = text.find(begin_marker(name))
    end = text.find(end_marker(name))
    if begin < 0 or end < begin:
        raise UserError(f"{where}: no block `{begin_marker(name)}... -->` ... `{end_marker(name)}` to write {name} into")
    return text.index("\n", begin) + 1, end


def read_block(path: str | Path, name: str) -> str:
    text = Path(path).read_text(encoding="utf-8")
    start, end = _span(text, name, str(path))
    return text[start:end]


def write_block(path: str | Path, name: str, body: str) -> bool:
    """Replace the block's body with `body` (ending in a newline); True when it changed."""
    text = Path(path).read_text(encoding="utf-8")
    start, end = _span(text, name, str(path))
    if text[start:end] == body:
        return False
    write_text_atomic(path, text[:start] + body + text[end:])
    return True


def read_rows(path: str | Path) -> list[dict]:
    """A study CSV's rows: numbers as floats, empty cells as None, other cells as text."""
    def value(cell: str):
        if cell == "":
            return None
        try:
            return float(cell)
        except ValueError:
            return cell

    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def commits_line(path: str, rows: list[dict]) -> str:
    """Which commit's code gave the rows: the first line of every generated block."""
    commits = list(dict.fromkeys(str(r.get("commit") or "unrecorded")[:7] for r in rows))
    return f"From `{path}`, runs of commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}:"
