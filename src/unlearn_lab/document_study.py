"""The documents study's table and figure: target, oracle and each method's unlearned model on the
documents benchmark, from the metrics files each run left (scripts/documents_study.py runs them)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .plotting import pyplot, save

# What the table keeps of each model's metrics: MUSE's three forget criteria and the utility.
KEYS = ("verbmem_forget", "knowmem_forget", "privleak_documents", "verbmem_retain", "knowmem_retain",
        "mia_documents_auc", "model_utility")
PANELS = (("verbmem_forget", "verbmem on forget documents"), ("knowmem_forget", "knowmem on forget facts"),
          ("verbmem_retain", "verbmem on retain documents"), ("knowmem_retain", "knowmem on retain facts"),
          ("world_rouge_l_recall", "world facts ROUGE-L"))


def model_row(name: str, metrics: dict, seconds: float | None = None) -> dict:
    """One model's row: each key's value and its 95% interval (`<key>_low`, `<key>_high`)."""
    row: dict = {"model": name}
    for key in KEYS:
        row[key] = metrics.get(key)
        low, high = metrics.get(f"{key}_ci95") or (None, None)
        row[f"{key}_low"], row[f"{key}_high"] = low, high
    world = metrics.get("world", {})
    row["world_rouge_l_recall"] = world.get("rouge_l_recall")
    low, high = world.get("rouge_l_recall_ci95") or (None, None)
    row["world_rouge_l_recall_low"], row["world_rouge_l_recall_high"] = low, high
    row["forget_documents"] = metrics.get("forget_documents", {}).get("n")
    row["forget_questions"] = metrics.get("forget", {}).get("n")
    if seconds is not None:
        row["unlearn_seconds"] = seconds
    return row


def study_rows(results: Path) -> list[dict]:
    """Rows from `results/<method>/{target,oracle,unlearned,unlearn}.json` (one folder per method;
    the target and oracle are taken from the first)."""
    folders = sorted(p for p in Path(results).iterdir() if (p / "unlearned.json").is_file())
    if not folders:
        raise FileNotFoundError(f"{results}: no <method>/unlearned.json")
    read = lambda folder, name: json.loads((folder / f"{name}.json").read_text())  # noqa: E731
    rows = [model_row(name, read(folders[0], name)) for name in ("target", "oracle")]
    for folder in folders:
        run = read(folder, "unlearn")
        rows.append({**model_row(f"unlearned {run['method']}", read(folder, "unlearned"), run.get("seconds")),
                     "lr": run.get("lr"), "steps": run.get("steps")})
    return rows


def study_plot(rows: list[dict], path: Path) -> None:
    """One panel per score, a point per model with its 95% interval bar."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.6), sharey=True)
    names = [r["model"] for r in rows]
    y = np.arange(len(rows))
    for ax, (key, title) in zip(axes, PANELS):
        values = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
        low = np.array([np.nan if r.get(f"{key}_low") is None else r[f"{key}_low"] for r in rows], dtype=float)
        high = np.array([np.nan if r.get(f"{key}_high") is None else r[f"{key}_high"] for r in rows], dtype=float)
        err = np.vstack([np.nan_to_num(values - low), np.nan_to_num(high - values)])
        ax.errorbar(values, y, xerr=err, fmt="o", capsize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.suptitle("Documents benchmark: forget (low is forgotten) and retain (high is kept), 95% intervals", fontsize=10)
    fig.tight_layout()
    save(fig, path)
