"""Stage plots: figures and the before/after answer table from the evaluation outputs."""
from pathlib import Path

from unlearn_lab.cli import run_stage
from unlearn_lab.io import read_json, read_jsonl, write_text_atomic
from unlearn_lab.plots import (
    MODELS, before_after_markdown, before_after_plot, before_after_rows, epoch_curves_plot, metric_bars_plot,
    retain_split_plot, training_curves_plot, truth_ratio_plot,
)

OUT = Path("plots")


def main():
    metrics = {m: read_json(f"metrics/{m}.json") for m in MODELS}
    metrics = {m: v for m, v in metrics.items() if v.get("available", True)}
    rows = {m: read_jsonl(f"eval/{m}.jsonl") for m in metrics}
    truth_ratio_plot(rows, metrics, OUT / "truth_ratio_forget.png")
    retain_split_plot(metrics, OUT / "retain_split.png")
    metric_bars_plot(metrics, OUT / "metrics.png")
    runs = {name: Path("logs") / d for name, d in (("target", "finetune_target"), ("oracle", "finetune_oracle"),
                                                   ("unlearn", "unlearn")) if (Path("logs") / d).is_dir()}
    training_curves_plot(runs, OUT / "training.png")
    epoch_curves_plot(Path("logs/unlearn_epochs"), OUT / "unlearn_epochs.png")
    table = before_after_rows(rows)
    write_text_atomic(OUT / "before_after.md", before_after_markdown(table))
    before_after_plot(table, OUT / "before_after.png")
    print(f"{OUT}/: truth_ratio_forget.png retain_split.png metrics.png training.png unlearn_epochs.png "
          "before_after.png before_after.md")


if __name__ == "__main__":
    run_stage(main)
