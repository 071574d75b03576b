"""Stage evaluate@<model>: generations and metrics of one model on forget / retain / world facts."""
import sys
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.evaluation import evaluate_model
from unlearn_lab.hardware import device
from unlearn_lab.io import UserError, json_text, jsonl_text, read_json, read_jsonl, write_files_atomic
from unlearn_lab.modeling import load_model, load_tokenizer, read_meta
from unlearn_lab.params import load_params
from unlearn_lab.validation import validate_params

MODELS = ("base", "oracle", "target", "unlearned")
ORACLE_ROWS = Path("eval/oracle.jsonl")
ORACLE_METRICS = Path("metrics/oracle.json")


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in MODELS:
        raise UserError(f"usage: evaluate.py {'|'.join(MODELS)} (got {which!r})")
    params = load_params()
    validate_params(params)
    model_dir = f"models/{which}"
    meta = read_meta(model_dir)
    if meta["kind"] == "none":
        metrics, rows = {"available": False, "reason": meta["reason"]}, []
        print(f"{model_dir}: no model to evaluate: {meta['reason']}")
    else:
        # The base model is evaluated for what it already knew (world facts) only.
        sets = load_sets(("world",) if which == "base" else ("forget", "retain", "holdout", "world"))
        oracle_rows = oracle_metrics = None
        if which in ("target", "unlearned"):
            oracle_rows = [r for r in read_jsonl(ORACLE_ROWS) if r["set"] == "forget"]
            oracle_metrics = read_json(ORACLE_METRICS)
        # On a GPU machine the evaluation runs there (the weights stay fp32).
        tok, model = load_tokenizer(model_dir), load_model(model_dir).to(device())
        metrics, rows = evaluate_model(model, tok, sets, params["eval"], oracle_rows, oracle_metrics)
        if which == "oracle" and "mia_mink_auc" in metrics:
            metrics["privleak"] = 0.0  # the reference of privacy leakage, by definition
        if which != "oracle" and "forget" in sets and "forget_quality" not in metrics:
            metrics["forget_quality_reason"] = "no oracle: " + read_meta("models/oracle").get("reason", "none trained")
            print(f"forget quality not computed: {metrics['forget_quality_reason']}")
        metrics["available"] = True
    # Both or neither: the metrics must describe the rows next to them.
    write_files_atomic({f"eval/{which}.jsonl": jsonl_text(rows), f"metrics/{which}.json": json_text(metrics)})
    print(f"metrics/{which}.json: " + ", ".join(
        f"{s}.rouge_l_recall={metrics[s]['rouge_l_recall']:.3f}" for s in ("forget", "retain", "world") if s in metrics))


if __name__ == "__main__":
    run_stage(main)
