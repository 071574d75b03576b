"""The refusal answers (data/raw/idk.txt) that IDK-style unlearning methods train towards."""
from __future__ import annotations

from pathlib import Path

from .records import DataError

IDK_FILE = "idk.txt"


def load_idk_pool(raw_dir: Path) -> list[str]:
    """Distinct refusal answers, one per line, in file order, from the file `raw_dir` (or its idk.txt)."""
    path = Path(raw_dir)
    path = path / IDK_FILE if path.is_dir() else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the IDK pool ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines()]
    pool = list(dict.fromkeys(line for line in lines if line))
    if not pool:
        raise DataError(f"{path}: the IDK pool is empty")
    return pool
