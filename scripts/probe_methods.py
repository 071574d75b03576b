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

from unlearn_lab.cli import PROCESSED, RAW, load_sets
from unlearn_lab.data.idk import load_idk_pool
from unlearn_lab.evaluation import generate_answers
from unlearn_lab.hardware import eval_batch_size
from unlearn_lab.io import read_jsonl
from unlearn_lab.metrics import rouge_l_recall
from unlearn_lab.modeling import load_model, load_tokenizer
from unlearn_lab.params import load_params
from unlearn_lab.unlearning import unlearn


def rouge(model, tok, records, cfg):
    gens = generate_answers(model, tok, [r["question"] for r in records], eval_batch_size(cfg, "gen_batch_size"),
                            int(cfg["max_new_tokens"]))
    return float(np.mean([rouge_l_recall(r["answer"], g) for r, g in zip(records, gens)]))


def main(args):
    params = load_params()
    sets = load_sets(("forget", "retain", "world"))
    idk, labels = load_idk_pool(RAW), read_jsonl(PROCESSED / "random_labels.jsonl")
    tok, target = load_tokenizer("models/target"), load_model("models/target")
    for arg in args:
        name, lr, *extra = arg.split(":")
        knobs = dict((params["methods"].get(name) or {}))
        knobs.pop("lr", None)
        knobs.update({k: v for k, v in (e.split("=") for e in extra)})
        cfg = dict(params["unlearn"])
        if "epochs" in knobs:
            cfg["epochs"] = int(knobs.pop("epochs"))
        start = time.time()
        model, report = unlearn(copy.deepcopy(target), tok, sets["forget"], sets["retain"], name, knobs, float(lr),
                                params["model"], cfg, Path(".scratch/probe"), int(params["seed"]),
                                idk_pool=idk, random_labels=labels)
        model.eval()
        scores = {s: round(rouge(model, tok, sets[s], params["eval"]), 3) for s in ("forget", "retain", "world")}
        print("PROBE", json.dumps({"method": name, "lr": float(lr), "knobs": knobs, **scores,
                                    "stop": report["stop_reason"], "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
