"""`build_benchmark`: the single entry point the data stage calls; every set it returns has been
through `validate_records`, and ids are unique across all sets."""
from __future__ import annotations

from pathlib import Path

from ..settings import Data
from .importing import load_import
from .records import DataError, _norm, check_disjoint, validate_records
from .synthetic import build_synthetic
from .world import (build_world_benchmark, load_world_facts, sample_world_eval, sample_world_replay,
                    world_records)

SETS = ("forget", "retain", "holdout", "world", "replay")


def build_benchmark(cfg: Data, raw_dir: Path, seed: int) -> dict[str, list[dict]]:
    """Return {"forget", "retain", "holdout", "world", "replay"}: lists of validated records.

    Synthetic benchmark: people facts split by `split`, a world-facts utility sample, and
    `world_replay` other world facts that the fine-tunes rehearse so the model keeps them.
    World benchmark: forget the capitals of `world_forget`, retain every other world fact
    (nothing is fine-tuned, so nothing is replayed).
    Import benchmark: the user's files named in `data.import` (see importing.py), with the
    world-facts sample and replay of the synthetic benchmark unless they bring a world set.
    Documents benchmark: the synthetic people's (or the imported) questions, which probe the
    facts of the documents (documents.py builds those).
    """
    rows = load_world_facts(Path(raw_dir))
    facts = world_records(rows, seed)
    if cfg.benchmark == "world":
        sets = build_world_benchmark(rows, facts, cfg.world_forget, cfg.world_eval_size, seed)
        sets["replay"] = []
    elif cfg.benchmark == "import" or (cfg.benchmark == "documents" and cfg.documents.forget):
        # Your own documents come with your questions about them (the knowledge probes).
        sets = _imported_benchmark(cfg, facts, seed)
    else:
        sets = build_synthetic(cfg, seed)
        sets["world"] = sample_world_eval(facts, cfg.world_eval_size, seed)
        sets["replay"] = sample_world_replay(facts, sets["world"], cfg.world_replay, seed)
    for name in SETS:
        validate_records(sets[name], name)
    if not sets["forget"] or not sets["retain"]:
        raise DataError("data: the benchmark has an empty forget or retain set")
    check_disjoint(sets)
    return {name: sets[name] for name in SETS}


def _imported_benchmark(cfg: Data, facts: list[dict], seed: int) -> dict[str, list[dict]]:
    """The user's sets; without a world set of their own, the shipped world-facts sample measures
    model utility. Replay (world facts both fine-tunes rehearse) comes from the shipped facts,
    never one whose question the user's data also asks."""
    sets = load_import(cfg.import_, seed, random_labels_k=cfg.random_labels_k)
    asked = {_norm(r["question"]) for name in ("forget", "retain", "holdout", "world")
             for r in sets[name]}
    fresh = [r for r in facts if _norm(r["question"]) not in asked]
    if not sets["world"]:
        sets["world"] = sample_world_eval(fresh, cfg.world_eval_size, seed)
    # sample_world_replay leaves out the evaluation sample it is given.
    sets["replay"] = sample_world_replay(fresh, sets["world"], cfg.world_replay, seed)
    return sets
