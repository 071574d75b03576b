"""Stage summary: headline numbers of the run from the per-model metrics and the `headline`
block of each robustness stage's metrics, and the one robustness verdict drawn from them."""
from unlearn_lab.environment import stamp
from unlearn_lab.errors import UserError
from unlearn_lab.io import read_json, write_json
from unlearn_lab.evaluation.report import build_summary, run_machine, summary_table
from unlearn_lab.robustness.verdict import robustness_score
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, many=("robustness",), metrics="folder of the per-model metrics",
                      robustness="metrics of the robustness stages, each with a `headline` block",
                      out="the summary (JSON)")
    settings = load_settings()
    models = {name: read_json(args.metrics / f"{name}.json") for name in ("base", "target", "oracle", "unlearned")}
    unlearn_report = read_json(args.metrics / "unlearn.json")
    sources = {**{f"{name}.json": m for name, m in models.items()}, "unlearn.json": unlearn_report}
    robustness = {}
    for path in args.robustness:
        sources[path.name] = read_json(path)
        block = sources[path.name].get("headline")
        if not isinstance(block, dict):
            raise UserError(f"{path}: no `headline` block; re-run the stage that writes it")
        robustness.update(block)
    # The verdict needs the quantize and relearn headlines together, so no single stage can write it.
    robustness.update(robustness_score(robustness))
    summary = build_summary(models, settings, unlearn_report, robustness)
    write_json(args.out, {**stamp(summary), **run_machine(sources)})
    print(summary_table(summary))


if __name__ == "__main__":
    run_stage(main)
