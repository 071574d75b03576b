"""Figures a reader looks at instead of reading numbers: truth-ratio distributions, the retain
split, metric bars of target / oracle / unlearned, and a before/after table of answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODELS = ("target", "oracle", "unlearned")
COLORS = {"target": "tab:red", "oracle": "tab:green", "unlearned": "tab:blue", "base": "tab:grey",
          "relearned": "tab:orange"}
BARS = [("forget", "rouge_l_recall", "forget ROUGE-L"), ("retain", "rouge_l_recall", "retain ROUGE-L"),
        ("world", "rouge_l_recall", "world ROUGE-L"), ("forget", "prob", "forget prob"),
        ("retain", "prob", "retain prob"), ("forget", "truth_ratio", "forget truth ratio"),
        ("forget", "exact_memorization", "forget exact memo."), (None, "model_utility", "model utility"),
        (None, "mia_minkpp_auc", "MIA Min-k%++ AUC")]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=100)
    _plt().close(fig)
    tmp.replace(path)


def truth_ratio_plot(rows: dict[str, list[dict]], metrics: dict[str, dict], path: Path) -> None:
    """Empirical CDFs of the forget-set truth ratios: forget quality is the KS test between the
    unlearned (or target) curve and the oracle's."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in MODELS:
        values = np.sort([r["truth_ratio"] for r in rows.get(model, []) if r["set"] == "forget"])
        if len(values):
            fq = metrics.get(model, {}).get("forget_quality")
            label = model + (f" (forget quality {fq:.2g})" if fq is not None else "")
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", color=COLORS[model],
                    label=label, lw=2)
    ax.set_xscale("log")
    ax.set_xlabel("truth ratio R on forget questions (log; < 1: prefers the true answer)")
    ax.set_ylabel("fraction of forget questions")
    ax.set_title("Forget-set truth ratios: unlearned should match the oracle")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]]):
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (model, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=model, color=COLORS.get(model))
        for bar, v in zip(bars, values):
            if np.isfinite(v):
                ax.annotate(f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(x, groups)
    ax.legend(fontsize=9, loc="upper center", ncol=len(series), frameon=False)


def retain_split_plot(metrics: dict[str, dict], path: Path) -> None:
    """ROUGE-L recall and prob on retain facts correlated with the forget set (same people /
    fields) against the other retain facts: collateral damage shows first on the correlated ones."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("rouge_l_recall", "prob")):
        groups = ["retain_correlated", "retain_other"]
        series = {m: [metrics[m].get(g, {}).get(key, np.nan) for g in groups] for m in MODELS if m in metrics}
        _grouped_bars(ax, ["correlated", "other"], series)
        ax.set_ylim(0, 1.22)
        ax.set_title({"rouge_l_recall": "ROUGE-L recall", "prob": "answer probability"}[key])
    fig.suptitle("Retain facts correlated with the forget set vs the others")
    fig.tight_layout()
    _save(fig, path)


def metric_bars_plot(metrics: dict[str, dict], path: Path) -> None:
    """Headline metrics of target / oracle / unlearned side by side (all on a 0-1 scale)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    labels = [label for _, _, label in BARS]
    series = {}
    for model in MODELS:
        if model in metrics:
            m = metrics[model]
            values = [(m.get(s, {}) if s else m).get(k) for s, k, _ in BARS]
            series[model] = [np.nan if v is None else float(v) for v in values]
    _grouped_bars(ax, labels, series)
    ax.set_ylim(0, 1.2)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Target (knows everything), oracle (never saw the forget set), unlearned")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def pick_examples(rows: dict[str, list[dict]], n: int = 4) -> list[str]:
    """Ids of the first n forget questions and n retain questions (correlated ones first)."""
    target = rows.get("target") or next(iter(rows.values()))
    forget = [r["id"] for r in target if r["set"] == "forget"][:n]
    retain = sorted((r for r in target if r["set"] == "retain"), key=lambda r: not r.get("correlated"))
    return forget + [r["id"] for r in retain[:n]]


def before_after_rows(rows: dict[str, list[dict]], n: int = 4) -> list[dict]:
    by_id = {m: {(r["set"], r["id"]): r for r in rs} for m, rs in rows.items()}
    out = []
    target = rows.get("target") or []
    index = {r["id"]: r for r in target}
    for rid in pick_examples(rows, n):
        rec = index[rid]
        row = {"set": rec["set"], "question": rec["question"], "answer": rec["answer"]}
        for model in MODELS:
            hit = by_id.get(model, {}).get((rec["set"], rid))
            row[model] = hit["generated"] if hit else ""
        out.append(row)
    return out


def before_after_markdown(table: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| set | question | fact | target | oracle | unlearned |", "|---|---|---|---|---|---|"]
    for r in table:
        lines.append("| " + " | ".join(cell(r[k]) for k in ("set", "question", "answer", *MODELS)) + " |")
    return "\n".join(lines) + "\n"


def before_after_plot(table: list[dict], path: Path) -> None:
    """The table as an image, so `dvc plots show` shows it next to the charts."""
    import textwrap

    plt = _plt()
    # 12 inches at 100 dpi: as wide as the other figures, so `dvc plots show` needs no scrolling
    fig, ax = plt.subplots(figsize=(12, 0.9 + 0.62 * len(table)))
    ax.axis("off")
    cols = ["set", "question", "fact", *MODELS]
    cells = [[r["set"], textwrap.fill(r["question"], 30), textwrap.fill(r["answer"], 16),
              *(textwrap.fill(r[k], 28) for k in MODELS)] for r in table]
    tab = ax.table(cellText=cells, colLabels=cols, loc="center", cellLoc="left",
                   colWidths=[0.06, 0.22, 0.12, 0.2, 0.2, 0.2])
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1, 2.6)
    for (row, _), cell in tab.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
        elif table[row - 1]["set"] == "forget":
            cell.set_facecolor("#fdecea")
    ax.set_title("Greedy answers before (target) and after unlearning; forget rows shaded", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def read_live_series(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every DVCLive metric of a run as (steps, values), keyed by its path under plots/metrics."""
    out = {}
    root = Path(run_dir) / "plots" / "metrics"
    for tsv in sorted(root.rglob("*.tsv")):
        data = np.genfromtxt(tsv, delimiter="\t", names=True)
        data = np.atleast_1d(data)
        names = data.dtype.names
        out[str(tsv.relative_to(root).with_suffix(""))] = (data[names[0]], data[names[-1]])
    return out


def training_curves_plot(runs: dict[str, Path], path: Path) -> None:
    """Per-step training loss of each run (fine-tunes and unlearning), and the unlearning
    method's own loss parts; the same curves as the DVCLive plots, drawn without JavaScript."""
    plt = _plt()
    series = {name: read_live_series(d) for name, d in runs.items()}
    unlearn = series.get("unlearn", {})
    parts = [k for k in unlearn
             if k.startswith("train/") and k not in ("train/loss", "train/learning_rate", "train/grad_norm")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, s in series.items():
        if "train/loss" in s and name != "unlearn":
            axes[0].plot(*s["train/loss"], label=f"{name} loss")
    axes[0].set_title("fine-tuning loss per step")
    axes[0].set_xlabel("step")
    axes[0].set_yscale("log")
    if "train/loss" in unlearn:
        axes[1].plot(*unlearn["train/loss"], label="loss", color="black", lw=2)
    for key in parts:
        axes[1].plot(*unlearn[key], label=key.split("/", 1)[1], lw=1)
    axes[1].set_title("unlearning: loss and its parts per step")
    axes[1].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def epoch_curves_plot(run_dir: Path, path: Path) -> None:
    """Forget / retain ROUGE-L recall and the forget truth-ratio score before and after each
    unlearning epoch, with the epoch's mean loss."""
    plt = _plt()
    s = read_live_series(run_dir)
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 4))
    for key, label, color in (("epoch/forget_rouge_l_recall", "forget ROUGE-L recall", "tab:red"),
                              ("epoch/retain_rouge_l_recall", "retain ROUGE-L recall", "tab:green"),
                              ("epoch/forget_truth_ratio", "forget truth-ratio score", "tab:purple")):
        if key in s:
            ax.plot(*s[key], marker="o", label=label, color=color)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("epoch (0: before unlearning)")
    ax.set_title("forgetting and keeping, epoch by epoch")
    if "epoch/train_loss" in s:
        ax_loss.plot(*s["epoch/train_loss"], marker="o", color="black")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("mean unlearning loss of the epoch")
    for a in (ax, ax_loss):
        a.grid(alpha=0.3)
        a.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
