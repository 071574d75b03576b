"""Fixtures the import tests share: hand-written files, and the benchmark built from them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn_lab.data import DataError
from unlearn_lab.data.benchmark import build_benchmark as _build_benchmark
from unlearn_lab.settings import parse_settings

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
SMALL_WORLD = {"world_eval_size": 6, "world_replay": 4}

# Retain facts shared by several fixtures: enough distinct answers for 5 perturbed ones each.
RETAIN_QA = [
    ("Who founded Zorb?", "Queen Ama"),
    ("What is the moon of Zorb called?", "Tiko"),
    ("How many suns does Zorb have?", "Three"),
    ("What do people on Zorb eat?", "Moss bread"),
    ("What is the ocean of Zorb called?", "The Vel"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def build_benchmark(cfg: dict, raw_dir, seed: int):
    """The data section `cfg` checked the way a stage checks params.yaml, then built."""
    return _build_benchmark(parse_settings({"data": cfg}).data, raw_dir, seed)


def build(imp: dict, seed: int = 0, **data) -> dict[str, list[dict]]:
    cfg = {"benchmark": "import", **SMALL_WORLD, **data,
           "import": {k: (str(v) if isinstance(v, Path) else v) for k, v in imp.items()}}
    return build_benchmark(cfg, RAW, seed)


def retain_jsonl(tmp_path: Path) -> Path:
    return write(tmp_path / "retain.jsonl",
                 jsonl([{"question": q, "answer": a} for q, a in RETAIN_QA]))


TOFU_ROW = {
    "question": "What genre does the author Basil Mahfouz write?",
    "answer": "Basil Mahfouz writes historical fiction.",
    "paraphrased_question": "Which genre is Basil Mahfouz known for?",
    "paraphrased_answer": "He is known for historical fiction.",
}


def import_error(imp: dict, **data) -> str:
    with pytest.raises(DataError) as err:
        build(imp, **data)
    return str(err.value)


def bad_forget(tmp_path: Path, name: str, text: str | bytes, **imp) -> str:
    """The message importing `text` as the forget file (with the shared retain file) gives."""
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return import_error({"forget": path, "retain": retain_jsonl(tmp_path), **imp})


# Answers of each kind (test_import_draws): six or more distinct answers of each, so each kind is used.
YEARS = [(f"In what year was Zorb city {i} founded?", str(1900 + 7 * i)) for i in range(8)]
PLACES = [(f"Where was the Zorb poet {n} born?", c) for n, c in zip(
    "ABCDEFGH", ("Lyon", "Porto", "Krakow", "Valencia", "Leipzig", "Bergen", "Tampere", "Ghent"))]
PEOPLE = [(f"Who founded the Zorb guild {i}?", n) for i, n in enumerate(
    ("Ilona Marsh", "Bram Quennell", "Tavish Ashgrove", "Odile Brannock", "Kasimir Dunmore",
     "Maren Everly", "Fenna Falkner", "Lucan Jessop"))]
FOODS = [(f"What do people in Zorb valley {i} eat?", f) for i, f in enumerate(
    ("moss bread", "salt cakes", "fern soup", "cave fish", "blue rice", "sour milk"))]


def kinds_retain(tmp_path: Path, rows=YEARS + PLACES + PEOPLE + FOODS,
                 name="retain.jsonl") -> Path:
    return write(tmp_path / name, jsonl([{"id": f"k{i}", "question": q, "answer": a}
                                         for i, (q, a) in enumerate(rows)]))


def run_process_data(repo: Path, params: dict):
    """The process_data stage run in `repo` (its data/raw already laid out) with the project's
    params.yaml changed by `params` (dotted keys), as a user would run it: the finished process."""
    import os
    import shutil
    import subprocess
    import sys

    from unlearn_lab.studies.scratch import set_params

    root = RAW.parents[1]
    shutil.copy(root / "params.yaml", repo / "params.yaml")
    set_params(repo / "params.yaml", params)
    return subprocess.run([sys.executable, str(root / "stages" / "process_data.py"), "--raw", "data/raw",
                           "--base", "models/base", "--out", "data/processed"], cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(root / "src")}, capture_output=True, text=True)
