"""Stage plots: figures and the before/after answer table from the evaluation outputs."""
from unlearn_lab.io import read_json, read_jsonl, write_text_atomic
from unlearn_lab.evaluation.plots import (
    MODELS, before_after_markdown, before_after_plot, before_after_rows, epoch_curves_plot, metric_bars_plot,
    requests_plot, retain_split_plot, training_curves_plot, truth_ratio_plot,
)
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, metrics="folder of the per-model metrics", rows="folder of the per-model rows",
                      logs="folder of the DVCLive runs", out="folder of the figures")
    out = args.out
    metrics = {m: read_json(args.metrics / f"{m}.json") for m in MODELS}
    metrics = {m: v for m, v in metrics.items() if v.get("available", True)}
    rows = {m: read_jsonl(args.rows / f"{m}.jsonl") for m in metrics}
    truth_ratio_plot(rows, metrics, out / "truth_ratio_forget.png")
    retain_split_plot(metrics, out / "retain_split.png")
    metric_bars_plot(metrics, out / "metrics.png")
    runs = {name: args.logs / d for name, d in (("target", "finetune_target"), ("oracle", "finetune_oracle"),
                                                ("unlearn", "unlearn")) if (args.logs / d).is_dir()}
    training_curves_plot(runs, out / "training.png")
    epoch_curves_plot(args.logs / "unlearn_epochs", out / "unlearn_epochs.png")
    requests_plot(read_json(args.metrics / "unlearn.json"), out / "requests.png")
    table = before_after_rows(rows)
    write_text_atomic(out / "before_after.md", before_after_markdown(table))
    before_after_plot(table, out / "before_after.png")
    print(f"{out}/: truth_ratio_forget.png retain_split.png metrics.png training.png unlearn_epochs.png "
          "requests.png before_after.png before_after.md")


if __name__ == "__main__":
    run_stage(main)
