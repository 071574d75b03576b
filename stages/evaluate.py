"""Stage evaluate@<model>: generations and metrics of one model on forget / retain / world facts."""
import argparse
from pathlib import Path

from unlearn_lab.data.sets import SETS, load_documents, load_sets, sample
from unlearn_lab.evaluation.documents import evaluate_all_documents
from unlearn_lab.environment import stamp
from unlearn_lab.evaluation.questions import evaluate_model
from unlearn_lab.models.hardware import device
from unlearn_lab.io import json_text, jsonl_text, read_json, read_jsonl, write_files_atomic
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage
from unlearn_lab import timing


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the model folder to evaluate")
    parser.add_argument("--data", type=Path, required=True, help="folder of the processed sets")
    parser.add_argument("--sets", default="forget,retain,holdout,world", help="comma-separated sets to evaluate")
    parser.add_argument("--rows", type=Path, required=True, help="per-question rows (JSON lines)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics (JSON)")
    parser.add_argument("--oracle", type=Path, help="the oracle model folder (forget quality is relative to it)")
    parser.add_argument("--oracle-rows", type=Path, help="the oracle's rows (forget truth ratios, reference attack)")
    parser.add_argument("--oracle-metrics", type=Path, help="the oracle's metrics (privacy leakage reference)")
    parser.add_argument("--is-oracle", action="store_true", help="this model is the oracle (privleak 0 by definition)")
    parser.add_argument("--judge", type=Path, help="the model that scores the generations' fluency (the base model)")
    args = parser.parse_args()
    args.sets = tuple(s for s in args.sets.split(",") if s)
    unknown = set(args.sets) - set(SETS)
    if unknown:
        parser.error(f"--sets: unknown set(s) {sorted(unknown)}; known: {', '.join(SETS)}")
    return args


def main():
    args = arguments()
    settings = load_settings()
    meta = read_meta(args.model)
    if meta["kind"] == "none":
        metrics, rows = {"available": False, "reason": meta["reason"]}, []
        print(f"{args.model}: no model to evaluate: {meta['reason']}")
    else:
        sets = load_sets(args.data, args.sets)
        if "retain" in sets:
            sets["retain"] = sample(sets["retain"], settings.eval.retain_sample)
        oracle_rows = oracle_metrics = None
        if args.oracle_rows:
            oracle_rows = read_jsonl(args.oracle_rows)
            oracle_metrics = read_json(args.oracle_metrics)
        # On a GPU machine the evaluation runs there (the weights stay fp32).
        with timing.part("load"):
            tok, model = load_tokenizer(args.model), load_model(args.model).to(device())
            judge = load_model(args.judge).to(device()) if args.judge else None
        # Documents (documents benchmark) are evaluated with the forget set they hold the facts of.
        documents = load_documents(args.data) if "forget" in args.sets else {}
        passages = (lambda: evaluate_all_documents(model, tok, documents, settings.eval)) if documents else None
        metrics, rows = evaluate_model(model, tok, sets, settings.eval, oracle_rows, oracle_metrics, judge,
                                       passages)
        if args.is_oracle:
            # the reference of privacy leakage, by definition
            for attack, key in (("mink", "privleak"), ("gradnorm", "privleak_gradnorm"),
                                ("documents", "privleak_documents")):
                if f"mia_{attack}_auc" in metrics:
                    metrics[key] = 0.0
        if args.oracle and "forget" in sets and "forget_quality" not in metrics:
            metrics["forget_quality_reason"] = "no oracle: " + read_meta(args.oracle).get("reason", "none trained")
            print(f"forget quality not computed: {metrics['forget_quality_reason']}")
        metrics["available"] = True
        metrics["seconds_by_part"] = timing.report()
    # Both or neither: the metrics must describe the rows next to them.
    write_files_atomic({args.rows: jsonl_text(rows), args.metrics: json_text(stamp(metrics))})
    print(f"{args.metrics}: " + ", ".join(
        f"{s}.rouge_l_recall={metrics[s]['rouge_l_recall']:.3f}" for s in ("forget", "retain", "world") if s in metrics))


if __name__ == "__main__":
    run_stage(main)
