"""Quick method tuning on the committed target model, in one process (no DVC): for each
METHOD:LR argument, unlearn a fresh copy of the target and print forget / retain / world ROUGE-L
recall from greedy generations. Use `dvc exp run` for the real numbers.

    python scripts/probe_methods.py npo:2.5e-4 gd:1e-4 rmu:1e-3:steering_coeff=40
"""
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from ruamel.yaml import YAML

from unlearn_lab.models import hardware
from unlearn_lab.data.sets import load_sets
from unlearn_lab.data.idk import load_idk_pool
from unlearn_lab.evaluation.questions import generate_answers
from unlearn_lab.io import read_jsonl
from unlearn_lab.training.methods import build_method
from unlearn_lab.evaluation.metrics import rouge_l_recall
from unlearn_lab.models.loading import load_model, load_tokenizer
from unlearn_lab.settings import load_settings, parse_settings, read_yaml
from unlearn_lab.training.unlearning import unlearn

PROCESSED = Path("data/processed")


def rouge(model, tok, records, cfg):
    cfg = hardware.resolve_eval(cfg)
    gens = generate_answers(model, tok, [r["question"] for r in records], cfg.gen_batch_size, cfg.max_new_tokens)
    return float(np.mean([rouge_l_recall(r["answer"], g) for r, g in zip(records, gens)]))


def main(args):
    settings = load_settings()
    sets = load_sets(PROCESSED, ("forget", "retain", "world"))
    idk, labels = load_idk_pool(Path("data/raw/idk.txt")), read_jsonl(PROCESSED / "random_labels.jsonl")
    tok, target = load_tokenizer("models/target"), load_model("models/target")
    hw = hardware.resolve(settings.hardware)
    params = read_yaml("params.yaml")
    for arg in args:
        name, lr, *extra = arg.split(":")
        # knob=value pairs are YAML values, checked like params.yaml's
        raw = copy.deepcopy(params)
        override = {k: YAML(typ="safe", pure=True).load(v) for k, v in (e.split("=") for e in extra)}
        epochs = override.pop("epochs", settings.unlearn.epochs)
        raw.setdefault("methods", {}).setdefault(name, {}).update(override)
        raw.setdefault("unlearn", {})["epochs"] = epochs
        raw["method"] = name
        run = parse_settings(raw)
        method = build_method(run)  # the knobs checked like params.yaml's
        start = time.time()
        model, report = unlearn(copy.deepcopy(target), tok, sets["forget"], sets["retain"], method, float(lr),
                                run.model, run.unlearn, hw, Path(".scratch/probe"), run.seed, idk_pool=idk,
                                random_labels=labels)
        model.eval()
        knobs = method.knobs
        scores = {s: round(rouge(model, tok, sets[s], run.eval), 3) for s in ("forget", "retain", "world")}
        print("PROBE", json.dumps({"method": name, "lr": float(lr), "knobs": knobs, **scores,
                                    "stop": report["stop_reason"], "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
