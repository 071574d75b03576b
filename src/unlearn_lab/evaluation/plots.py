"""Figures a reader looks at instead of reading numbers: truth-ratio distributions, the retain
split, metric bars of target / oracle / unlearned, and a before/after table of answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics.table import bars, benchmark_only
from ..figures import COLORS, grouped_bars, pyplot, save

MODELS = ("target", "oracle", "unlearned")


def truth_ratio_plot(rows: dict[str, list[dict]], metrics: dict[str, dict], path: Path) -> None:
    """Empirical CDFs of the forget-set truth ratios: forget quality is the KS test between the
    unlearned (or target) curve and the oracle's."""
    plt = pyplot()
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
    save(fig, path)


def retain_split_plot(metrics: dict[str, dict], path: Path) -> None:
    """ROUGE-L recall and prob on retain facts correlated with the forget set (same people /
    fields) against the other retain facts: collateral damage shows first on the correlated ones."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("rouge_l_recall", "prob")):
        groups = ["retain_correlated", "retain_other"]
        series = {m: [metrics[m].get(g, {}).get(key, np.nan) for g in groups] for m in MODELS if m in metrics}
        grouped_bars(ax, ["correlated", "other"], series)
        ax.set_ylim(0, 1.22)
        ax.set_title({"rouge_l_recall": "ROUGE-L recall", "prob": "answer probability"}[key])
    fig.suptitle("Retain facts correlated with the forget set vs the others")
    fig.tight_layout()
    save(fig, path)


def metric_bars_plot(metrics: dict[str, dict], path: Path) -> None:
    """Headline metrics of target / oracle / unlearned side by side (all on a 0-1 scale)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    shown = bars()
    series = {}
    for model in MODELS:
        if model in metrics:
            m = metrics[model]
            values = [(m.get(s, {}) if s else m).get(k) for s, k, _ in shown]
            series[model] = [np.nan if v is None else float(v) for v in values]
    # One benchmark's bars (the documents' verbmem, knowmem) only where some model has them.
    keep = [i for i, (_, k, _) in enumerate(shown)
            if k not in benchmark_only() or any(np.isfinite(v[i]) for v in series.values())]
    series = {model: [values[i] for i in keep] for model, values in series.items()}
    grouped_bars(ax, [shown[i][2] for i in keep], series)
    ax.set_ylim(0, 1.2)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Target (knows everything), oracle (never saw the forget set), unlearned")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, path)


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

    plt = pyplot()
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
    save(fig, path)


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
    plt = pyplot()
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
    save(fig, path)


def epoch_curves_plot(run_dir: Path, path: Path) -> None:
    """Forget / retain ROUGE-L recall and the forget truth-ratio score before and after each
    unlearning epoch, with the epoch's mean loss."""
    plt = pyplot()
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
    save(fig, path)


def requests_plot(report: dict, path: Path) -> None:
    """Sequential deletion requests (metrics/unlearn.json `after_requests`): left, each request's
    forget ROUGE-L recall against the number of requests applied (solid from the request on,
    dashed while it is still to come); right, retain and world ROUGE-L and model utility; bands
    are 95% intervals over the questions."""
    plt = pyplot()
    points = report.get("after_requests") or []
    requests = report.get("requests") or []
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.array([p["applied"] for p in points])

    def line(ax, values, low, high, color, label, style="-"):
        ax.plot(x, values, style, marker="o", color=color, label=label)
        if not np.all(np.isnan(low)):
            ax.fill_between(x, low, high, color=color, alpha=0.12)

    def series(get):
        value = np.array([get(p).get("value", np.nan) for p in points], dtype=float)
        ci = [get(p).get("ci95") or [np.nan, np.nan] for p in points]
        return value, np.array([c[0] for c in ci], dtype=float), np.array([c[1] for c in ci], dtype=float)

    colors = plt.get_cmap("tab10")
    for i, req in enumerate(requests):
        key, color = f"request_{req['request']}", colors(i % 10)
        value, low, high = series(lambda p: {"value": p.get(key, {}).get("rouge_l_recall", np.nan),
                                             "ci95": p.get(key, {}).get("rouge_l_recall_ci95")})
        unit = "documents" if "documents" in req else "questions"
        label = f"request {req['request']} ({req[unit]} {unit})"
        before, solid = x <= req["request"] - 1, x >= req["request"] - 1
        left.plot(x[before], value[before], "--", color=color, alpha=0.6)
        line(left, *(np.where(solid, v, np.nan) for v in (value, low, high)), color, label)
    left.set_title("Forget ROUGE-L recall of each request")
    for key, label, color in (("retain_rouge_l_recall", "retain ROUGE-L", "tab:green"),
                              ("world_rouge_l_recall", "world ROUGE-L", "tab:purple"),
                              ("model_utility", "model utility", "tab:blue")):
        line(right, *series(lambda p: {"value": p.get(key, np.nan), "ci95": p.get(f"{key}_ci95")}), color, label)
    right.set_title("What the model keeps")
    for ax in (left, right):
        ax.set_xlabel("deletion requests applied")
        ax.set_xticks(x if len(x) else [0])
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    method = report.get("method", "")
    fig.suptitle(f"{method}: {len(requests)} deletion request(s) applied in turn (dashed: not yet applied)")
    fig.tight_layout()
    save(fig, path)
