"""Same params and seed, any process: byte-identical data/processed/ and identical CPU metrics.

Each run is a separate process with its own PYTHONHASHSEED, so any output that depends on set
or dict-of-hash iteration order shows up as a difference.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from .import_fixtures import RETAIN_QA, jsonl

ROOT = Path(__file__).resolve().parents[1]
SETS = ("forget", "retain", "holdout", "world", "replay")


def run(args, cwd, hashseed: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": hashseed}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def import_files(raw: Path) -> dict:
    imp = raw / "import"
    imp.mkdir()
    (imp / "forget.csv").write_text("question,answer,is_correct\nWhat colour is Zorb's sky?,Green,true\n"
                                    "What colour is Zorb's sky?,Purple,false\nWho rules Zorb?,King Olo,true\n")
    (imp / "retain.json").write_text(json.dumps([
        {"question": q, "answer": a, "paraphrased_answer": f"It is {a}.", "perturbed_answer": ["No.", "Never."]}
        for q, a in RETAIN_QA]))
    (imp / "holdout.jsonl").write_text(jsonl([{"id": 7, "input": "Where is Zorb?", "output": "Far away",
                                               "task": "place"}]))
    return {"benchmark": "import", "import": {"forget": "data/raw/import/forget.csv",
                                              "retain": "data/raw/import/retain.json",
                                              "holdout": "data/raw/import/holdout.jsonl"}}


@pytest.mark.parametrize("benchmark", ["synthetic", "import"])
def test_process_data_is_byte_identical_across_processes(tmp_path, benchmark, tiny_dir):
    outputs = []
    for hashseed in ("1", "4242"):
        repo = tmp_path / f"run{hashseed}"
        shutil.copytree(ROOT / "data" / "raw", repo / "data" / "raw")
        yaml = YAML()
        params = yaml.load((ROOT / "params.yaml").read_text())
        if benchmark == "import":
            data = import_files(repo / "data" / "raw")
            params["data"]["benchmark"] = data["benchmark"]
            params["data"]["import"].update(data["import"])
        with open(repo / "params.yaml", "w") as fh:
            yaml.dump(params, fh)
        run([sys.executable, str(ROOT / "stages" / "process_data.py"), "--raw", "data/raw", "--base", str(tiny_dir),
             "--out", "data/processed"], repo, hashseed)
        outputs.append({n: (repo / "data" / "processed" / f"{n}.jsonl").read_bytes() for n in SETS})
    assert outputs[0] == outputs[1]
    assert all(outputs[0][n] for n in ("forget", "retain", "world", "replay"))


EVALUATE = """
import json, sys
from pathlib import Path
from unlearn_lab.data import build_benchmark
from unlearn_lab.evaluation.questions import evaluate_model
from unlearn_lab.models.loading import load_model, load_tokenizer
from unlearn_lab.settings import Data, Eval

sets = build_benchmark(Data(people=2, holdout_people=1, forget_fraction=0.5, world_eval_size=3, world_replay=0),
                       Path(sys.argv[2]), 0)
sets = {name: sets[name][:4] for name in ("forget", "retain", "holdout", "world")}
tok, model = load_tokenizer(sys.argv[1]), load_model(sys.argv[1])
cfg = Eval(batch_size=4, gen_batch_size=4, max_new_tokens=4)
metrics, rows = evaluate_model(model, tok, sets, cfg)
print(json.dumps({"metrics": metrics, "rows": rows}, sort_keys=True))
"""


def test_evaluation_metrics_are_identical_across_processes(tiny_dir, tmp_path):
    outs = [run([sys.executable, "-c", EVALUATE, str(tiny_dir), str(ROOT / "data" / "raw")], tmp_path, h)
            for h in ("1", "4242")]
    assert outs[0] == outs[1]
    metrics = json.loads(outs[0])["metrics"]
    assert {"forget", "retain", "holdout", "world", "model_utility", "mia_mink_auc"} <= set(metrics)
