"""The processed sets on disk (data/processed/<name>.jsonl): their names, and loading them."""
from __future__ import annotations

from pathlib import Path

from ..io import read_jsonl

SETS = ("forget", "retain", "holdout", "world", "replay")


def load_sets(folder: Path, names=SETS) -> dict[str, list[dict]]:
    """The processed sets `names` from `folder` (data/processed)."""
    return {name: read_jsonl(Path(folder) / f"{name}.jsonl") for name in names}
