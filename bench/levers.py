"""The evaluation and audit's costly parts, timed on the real model so one change to them can be
measured before and after on one machine in one sitting: run it once with the old commit's source
and once with the new one's, then compare the two JSON files (seconds, and the largest difference
of what each part computed).

    PYTHONPATH=<old checkout>/src python bench/levers.py --json old.json
    PYTHONPATH=src python bench/levers.py --json new.json
    python bench/levers.py --compare old.json new.json --summary bench/results/levers-cpu.json

Parts (the default run's settings, params.yaml and machine.yaml):
- `log-probs`: every evaluated question's 7 candidate answers after its prompt with the per-token
  statistics (`shared_prompt_nlls`, as evaluate_set calls it), forget + retain + holdout + world;
- `best-of-n`: the attack's sampled answers of every forget question (`generate_texts` with
  `attack.samples` at `attack.temperature`, torch seeded as the attack stage does), the draws
  kept so both runs can be compared answer for answer;
- `represent`: one model's readouts (`representation.read_model`, the represent_readouts stage's
  work): pooled states, logit lens and probes;
- `gradient norms`: the forget questions' per-example gradient norms (mia_gradnorm).

It needs a model folder the pipeline wrote (default models/target) and data/processed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def timed(name: str, fn, results: dict) -> None:
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    results[name] = {"seconds": round(seconds, 2), "value": value}
    print(f"{name}: {seconds:.1f} s", file=sys.stderr)


def run(model_dir: Path, data: Path, parts: list[str]) -> dict:
    import torch

    from unlearn_lab.data.sets import load_sets
    from unlearn_lab.evaluation import questions as q
    from unlearn_lab.models.hardware import resolve_eval
    from unlearn_lab.models.loading import load_model, load_tokenizer, prompt_text
    from unlearn_lab.robustness import representation
    from unlearn_lab.settings import load_settings

    settings = load_settings()
    ev = resolve_eval(settings.eval)
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    sets = load_sets(data, ("forget", "retain", "holdout", "world"))
    import unlearn_lab

    results: dict = {"torch_threads": torch.get_num_threads(), "source": str(Path(unlearn_lab.__file__).parent)}
    print(f"source: {results['source']}", file=sys.stderr)
    records = [r for name in ("forget", "retain", "holdout", "world") for r in sets[name]]

    def log_probs():
        refs = [r.get("answer_text") or r["answer"] for r in records]
        nll, stats = q.shared_prompt_nlls(model, tok, [r["question"] for r in records],
                                          [[ref, r["paraphrased_answer"], *r["perturbed_answers"]]
                                           for r, ref in zip(records, refs)], ev.batch_size, token_stats=True)
        return {"nll": nll.tolist(), "logp": [s["logp"].tolist() for s in stats]}

    def best_of_n():
        cfg = settings.attack
        torch.manual_seed(settings.seed)
        per_batch = max(1, ev.gen_batch_size * 4 // cfg.samples)
        return q.generate_texts(model, tok, [prompt_text(tok, r["question"]) for r in sets["forget"]], per_batch,
                                cfg.max_new_tokens, samples=cfg.samples, temperature=cfg.temperature)

    def represent():
        facts = representation.represent_facts(data, settings.represent.retain_size)
        states, probes = representation.read_model(model, tok, facts, settings.represent, settings.seed, "bench")
        return {"states": {k: v.tolist() for k, v in states.items()}, "probes": probes}

    def gradient_norms():
        return q.gradient_norms(model, tok, [(r["question"], r.get("answer_text") or r["answer"])
                                             for r in sets["forget"]])

    for name, fn in (("log-probs", log_probs), ("best-of-n", best_of_n), ("represent", represent),
                     ("gradient norms", gradient_norms)):
        if name in parts:
            with torch.no_grad() if name != "gradient norms" else torch.enable_grad():
                timed(name, fn, results)
    return results


def largest_difference(a, b) -> tuple[float, int]:
    """(largest absolute difference of the numbers, how many strings differ) between two nested values."""
    if isinstance(a, dict):
        pairs = [largest_difference(a[k], b[k]) for k in a if k in b]
    elif isinstance(a, list) and len(a) == len(b):
        pairs = [largest_difference(x, y) for x, y in zip(a, b)]
    elif isinstance(a, str):
        return 0.0, int(a != b)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (np.isfinite(a) or np.isfinite(b)):
            return 0.0, 0
        return abs(float(a) - float(b)), 0
    else:
        return float("inf"), 1
    return (max((p[0] for p in pairs), default=0.0), sum(p[1] for p in pairs))


def compare(old: Path, new: Path, summary: Path | None = None) -> None:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    rows = {}
    print(f"{'part':<16} {'old s':>8} {'new s':>8} {'speed-up':>8}  largest difference")
    for name in a:
        if name in b and isinstance(a[name], dict):
            diff, strings = largest_difference(a[name]["value"], b[name]["value"])
            rows[name] = {"old_s": a[name]["seconds"], "new_s": b[name]["seconds"],
                          "speedup": round(a[name]["seconds"] / b[name]["seconds"], 2),
                          "largest_difference": diff, "texts_differing": strings}
            print(f"{name:<16} {a[name]['seconds']:8.1f} {b[name]['seconds']:8.1f} "
                  f"{rows[name]['speedup']:7.2f}x  {diff:.3g} ({strings} texts differ)")
    if summary:
        from throughput import cpu_name  # bench/ is on sys.path when a script here runs

        summary.write_text(json.dumps({"old": a.get("source"), "new": b.get("source"), "cpu": cpu_name(),
                                       "torch_threads": b.get("torch_threads"), "parts": rows}, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/target"))
    ap.add_argument("--data", type=Path, default=Path("data/processed"))
    ap.add_argument("--parts", default="log-probs,best-of-n,represent,gradient norms")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"))
    ap.add_argument("--summary", type=Path, help="with --compare: also write the table (JSON) here")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare, args.summary)
        return
    results = run(args.model, args.data, args.parts.split(","))
    if args.json:
        args.json.write_text(json.dumps(results) + "\n")
    print(json.dumps({k: v["seconds"] for k, v in results.items() if isinstance(v, dict)}))


if __name__ == "__main__":
    main()
