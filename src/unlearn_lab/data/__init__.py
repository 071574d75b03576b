"""Benchmark data: synthetic people, world facts, imported user data, random labels, IDK pool.

`build_benchmark` is the single entry point the data stage calls; every set it returns has been
through `validate_records`, and ids are unique across all sets.
"""
from __future__ import annotations

from pathlib import Path

from .importing import load_import, resolve_import_config
from .random_labels import make_random_labels
from .records import DataError, _norm, check_disjoint, validate_records
from .synthetic import build_synthetic
from .world import (build_world_benchmark, load_world_facts, sample_world_eval, sample_world_replay,
                    world_records)

__all__ = ["DEFAULTS", "DataError", "build_benchmark", "load_idk_pool", "make_random_labels",
           "validate_records"]

IDK_FILE = "idk.txt"
BENCHMARKS = ("synthetic", "world", "import")
SPLIT_MODES = ("entity", "incident")
DEFAULTS = {
    "benchmark": "synthetic",
    "people": 10,
    "holdout_people": 2,
    "split": "entity",
    "forget_fraction": 0.2,
    "world_eval_size": 60,
    "world_forget": ["France"],
    "world_replay": 32,
    "import": None,
}
SETS = ("forget", "retain", "holdout", "world", "replay")


def _int(cfg: dict, key: str, minimum: int) -> int:
    val = cfg[key]
    if isinstance(val, bool) or not isinstance(val, int) or val < minimum:
        raise DataError(f"data.{key} must be an integer >= {minimum}, got {val!r}")
    return val


def resolve_config(data_cfg: dict | None) -> dict:
    """Defaults filled in and every value checked; keys this module does not use pass through."""
    cfg = {**DEFAULTS, **(data_cfg or {})}
    if cfg["benchmark"] not in BENCHMARKS:
        raise DataError(f"data.benchmark must be one of {', '.join(BENCHMARKS)}, "
                        f"got {cfg['benchmark']!r}")
    if cfg["split"] not in SPLIT_MODES:
        raise DataError(f"data.split must be one of {', '.join(SPLIT_MODES)}, "
                        f"got {cfg['split']!r}")
    _int(cfg, "people", 1)
    _int(cfg, "holdout_people", 0)
    _int(cfg, "world_eval_size", 0)
    _int(cfg, "world_replay", 0)
    ff = cfg["forget_fraction"]
    if isinstance(ff, bool) or not isinstance(ff, (int, float)) or not 0 < ff <= 1:
        raise DataError(f"data.forget_fraction must be in (0, 1], got {ff!r}")
    wf = cfg["world_forget"]
    if isinstance(wf, str):
        wf = [wf]
    if not isinstance(wf, list) or not wf or not all(isinstance(c, str) and c for c in wf):
        raise DataError(f"data.world_forget must be a non-empty list of country names, "
                        f"got {cfg['world_forget']!r}")
    cfg["world_forget"] = list(wf)
    cfg["import"] = resolve_import_config(cfg["import"], required=cfg["benchmark"] == "import")
    return cfg


def build_benchmark(data_cfg: dict, raw_dir: Path, seed: int) -> dict[str, list[dict]]:
    """Return {"forget", "retain", "holdout", "world", "replay"}: lists of validated records.

    Synthetic benchmark: people facts split by `split`, a world-facts utility sample, and
    `world_replay` other world facts that the fine-tunes rehearse so the model keeps them.
    World benchmark: forget the capitals of `world_forget`, retain every other world fact
    (nothing is fine-tuned, so nothing is replayed).
    Import benchmark: the user's files named in `data.import` (see importing.py), with the
    world-facts sample and replay of the synthetic benchmark unless they bring a world set.
    """
    cfg = resolve_config(data_cfg)
    rows = load_world_facts(Path(raw_dir))
    facts = world_records(rows, seed)
    if cfg["benchmark"] == "world":
        sets = build_world_benchmark(rows, facts, cfg["world_forget"], cfg["world_eval_size"],
                                     seed)
        sets["replay"] = []
    elif cfg["benchmark"] == "import":
        sets = _imported_benchmark(cfg, facts, seed)
    else:
        sets = build_synthetic(cfg, seed)
        sets["world"] = sample_world_eval(facts, cfg["world_eval_size"], seed)
        sets["replay"] = sample_world_replay(facts, sets["world"], cfg["world_replay"], seed)
    for name in SETS:
        validate_records(sets[name], name)
    if not sets["forget"] or not sets["retain"]:
        raise DataError("data: the benchmark has an empty forget or retain set")
    check_disjoint(sets)
    return {name: sets[name] for name in SETS}


def _imported_benchmark(cfg: dict, facts: list[dict], seed: int) -> dict[str, list[dict]]:
    """The user's sets; without a world set of their own, the shipped world-facts sample measures
    model utility. Replay (world facts both fine-tunes rehearse) comes from the shipped facts,
    never one whose question the user's data also asks."""
    sets = load_import(cfg["import"], seed, random_labels_k=cfg.get("random_labels_k", 3))
    asked = {_norm(r["question"]) for name in ("forget", "retain", "holdout", "world")
             for r in sets[name]}
    fresh = [r for r in facts if _norm(r["question"]) not in asked]
    if not sets["world"]:
        sets["world"] = sample_world_eval(fresh, cfg["world_eval_size"], seed)
    # sample_world_replay leaves out the evaluation sample it is given.
    sets["replay"] = sample_world_replay(fresh, sets["world"], cfg["world_replay"], seed)
    return sets


def load_idk_pool(raw_dir: Path) -> list[str]:
    """Distinct refusal answers from raw_dir/idk.txt, one per line, in file order."""
    path = Path(raw_dir) / IDK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the IDK pool ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines()]
    pool = list(dict.fromkeys(line for line in lines if line))
    if not pool:
        raise DataError(f"{path}: the IDK pool is empty")
    return pool
