"""Stage summary: headline numbers of the run from the per-model metrics."""
from unlearn_lab.cli import run_stage
from unlearn_lab.io import read_json, write_json
from unlearn_lab.params import load_params
from unlearn_lab.report import build_summary, robustness_headline
from unlearn_lab.validation import validate_params


def main():
    params = load_params()
    validate_params(params)
    models = {name: read_json(f"metrics/{name}.json") for name in ("base", "target", "oracle", "unlearned")}
    robustness = robustness_headline(*(read_json(f"metrics/{name}.json") for name in ("quantize", "relearn", "represent")))
    summary = build_summary(models, params, read_json("metrics/unlearn.json"), robustness)
    write_json("metrics/summary.json", summary)
    for name in ("target", "oracle", "unlearned"):
        print(name, summary[name])
    print("checks", summary["checks"])
    print("robustness", robustness)


if __name__ == "__main__":
    run_stage(main)
