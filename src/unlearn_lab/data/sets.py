"""The processed sets on disk (data/processed/<name>.jsonl): their names, and loading them."""
from __future__ import annotations

from pathlib import Path

from ..io import read_jsonl

SETS = ("forget", "retain", "holdout", "world", "replay")


def load_sets(folder: Path, names=SETS) -> dict[str, list[dict]]:
    """The processed sets `names` from `folder` (data/processed)."""
    return {name: read_jsonl(Path(folder) / f"{name}.jsonl") for name in names}


def sample(records: list[dict], size: int) -> list[dict]:
    """A fixed sample of `size` records (all when size <= 0 or there are no more): the correlated
    ones first (the facts most at risk when the forget set's neighbours are disturbed), then the
    others evenly spaced through the set, so that every person in it is asked about, not only
    the first few."""
    correlated = [r for r in records if r.get("correlated", False)]
    others = [r for r in records if not r.get("correlated", False)]
    if size <= 0 or size >= len(records):
        return correlated + others
    room = max(size - len(correlated), 0)
    spaced = [others[i * len(others) // room] for i in range(room)]
    return (correlated + spaced)[:size]
