"""Stage summary: headline numbers of the run from the per-model metrics."""
from unlearn_lab.io import read_json, write_json
from unlearn_lab.report import build_summary, robustness_headline
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, metrics="folder of the stages' metrics", out="the summary (JSON)")
    settings = load_settings()
    models = {name: read_json(args.metrics / f"{name}.json") for name in ("base", "target", "oracle", "unlearned")}
    robustness = robustness_headline(*(read_json(args.metrics / f"{name}.json")
                                       for name in ("quantize", "relearn", "represent")))
    summary = build_summary(models, settings, read_json(args.metrics / "unlearn.json"), robustness)
    write_json(args.out, summary)
    for name in ("target", "oracle", "unlearned"):
        print(name, summary[name])
    print("checks", summary["checks"])
    print("robustness", robustness)


if __name__ == "__main__":
    run_stage(main)
