"""The processed sets on disk (data/processed/<name>.jsonl): their names, and loading them."""
from __future__ import annotations

from pathlib import Path

from ..io import read_jsonl

SETS = ("forget", "retain", "holdout", "world", "replay")
DOCUMENTS = "documents.jsonl"


def load_sets(folder: Path, names=SETS) -> dict[str, list[dict]]:
    """The processed sets `names` from `folder` (data/processed)."""
    return {name: read_jsonl(Path(folder) / f"{name}.jsonl") for name in names}


def training_sets(folder: Path, sets: dict[str, list[dict]], benchmark: str) -> dict[str, list[dict]]:
    """What fine-tuning and unlearning train on, from the question `sets` loaded from `folder`:
    those sets, or on the documents benchmark the forget and retain documents in place of the
    questions (which then only probe them; the world-fact replay stays)."""
    if benchmark != "documents":
        return sets
    docs = read_jsonl(Path(folder) / DOCUMENTS)
    return {**sets, **{name: [d for d in docs if d["split"] == name] for name in ("forget", "retain") if name in sets}}


def load_documents(folder: Path) -> dict[str, list[dict]]:
    """The documents of each split ({} when the benchmark has none)."""
    path = Path(folder) / DOCUMENTS
    docs = read_jsonl(path) if path.exists() else []
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["split"], []).append(d)
    return out


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
