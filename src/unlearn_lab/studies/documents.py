"""The documents study's table and figure: target, oracle and each method's unlearned model on the
documents benchmark, from the metrics files each run left (scripts/documents_study.py runs them),
and the docs/studies.md table from the committed CSV."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..figures import pyplot, save
from .readme_blocks import commits_line
from .rows import cell, error_bars, put

# What the table keeps of each model's metrics: MUSE's three forget criteria and the utility.
KEYS = ("verbmem_forget", "knowmem_forget", "privleak_documents", "verbmem_retain", "knowmem_retain",
        "mia_documents_auc", "model_utility")
PANELS = (("verbmem_forget", "verbmem on forget documents"), ("knowmem_forget", "knowmem on forget facts"),
          ("verbmem_retain", "verbmem on retain documents"), ("knowmem_retain", "knowmem on retain facts"),
          ("world_rouge_l_recall", "world facts ROUGE-L"))
# The docs/studies.md table's columns: (key, title, decimals).
TABLE = (("verbmem_forget", "verbmem forget", 2), ("knowmem_forget", "knowmem forget", 2),
         ("privleak_documents", "privleak", 0), ("mia_documents_auc", "membership AUC", 3),
         ("verbmem_retain", "verbmem retain", 2), ("knowmem_retain", "knowmem retain", 2),
         ("world_rouge_l_recall", "world ROUGE-L", 2), ("model_utility", "model utility", 2))
# What scripts/documents_study.py writes beside each method's metrics: the commit that ran them.
RUN_FILE = "study.json"


def model_row(name: str, metrics: dict, seconds: float | None = None) -> dict:
    """One model's row: each key's value and its 95% interval (`<key>_low`, `<key>_high`)."""
    row: dict = {"model": name}
    for key in KEYS:
        put(row, key, metrics)
    put(row, "world_rouge_l_recall", metrics.get("world", {}), "rouge_l_recall")
    row["forget_documents"] = metrics.get("forget_documents", {}).get("n")
    row["forget_questions"] = metrics.get("forget", {}).get("n")
    if seconds is not None:
        row["unlearn_seconds"] = seconds
    return row


def recorded_commit(folder: Path) -> str:
    """The commit a method's runs used, as scripts/documents_study.py recorded it (RUN_FILE)."""
    path = folder / RUN_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found: these results do not say which commit ran them; run the method again "
                        "(make documents)")
    commit = json.loads(path.read_text(encoding="utf-8")).get("commit")
    if not commit:
        raise UserError(f"{path}: no `commit` field")
    return commit


def study_rows(results: Path, methods: list[str]) -> list[dict]:
    """Rows from `results/<method>/{target,oracle,unlearned,unlearn}.json` of exactly `methods`, in
    that order (the target and oracle are taken from the first); every row's `commit` is the
    commit the runs used, which must be one for all of them."""
    results = Path(results)
    missing = [m for m in methods if not (results / m / "unlearned.json").is_file()]
    if missing:
        raise UserError(f"{results}: no {', '.join(f'{m}/unlearned.json' for m in missing)} (run "
                        f"{'them' if len(missing) > 1 else 'it'} without --collect-only)")
    commits = {m: recorded_commit(results / m) for m in methods}
    if len(set(commits.values())) > 1:
        runs = ", ".join(f"{m} at {c[:7]}" for m, c in commits.items())
        raise UserError(f"{results}: the methods ran on different commits ({runs}); run them again together")
    read = lambda method, name: json.loads((results / method / f"{name}.json").read_text())  # noqa: E731
    rows = [model_row(name, read(methods[0], name)) for name in ("target", "oracle")]
    for method in methods:
        run = read(method, "unlearn")
        rows.append({**model_row(f"unlearned {run['method']}", read(method, "unlearned"), run.get("seconds")),
                     "lr": run.get("lr"), "steps": run.get("steps")})
    return [{**row, "commit": commits[methods[0]]} for row in rows]


def study_csv(rows: list[dict]) -> str:
    """The CSV text, the commit last."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame = frame[[c for c in frame.columns if c != "commit"] + ["commit"]]
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _label(row: dict) -> str:
    name = str(row["model"]).removeprefix("unlearned ")
    if row.get("lr") is None:
        return name
    mantissa, exponent = f"{row['lr']:.0e}".split("e")
    return f"{name} {mantissa}e{int(exponent)}"


def readme_block(rows: list[dict], csv_path: str = "metrics/documents.csv") -> str:
    """The documents table of docs/studies.md ("Documents") from the study's rows."""
    lines = [commits_line(csv_path, rows), "", "| model | " + " | ".join(title for _, title, _ in TABLE)
             + " | unlearning s |", "|---" * (len(TABLE) + 2) + "|"]
    for row in rows:
        cells = [cell(row, key, f".{digits}f") for key, _, digits in TABLE]
        if row["model"] == "oracle":
            cells[[k for k, _, _ in TABLE].index("privleak_documents")] += " (reference)"
        seconds = row.get("unlearn_seconds")
        cells.append("" if seconds is None else f"{seconds:.0f}")
        lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_plot(rows: list[dict], path: Path) -> None:
    """One panel per score, a point per model with its 95% interval bar."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.6), sharey=True)
    names = [r["model"] for r in rows]
    y = np.arange(len(rows))
    for ax, (key, title) in zip(axes, PANELS):
        values, err = error_bars(rows, key)
        ax.errorbar(values, y, xerr=err, fmt="o", capsize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.suptitle("Documents benchmark: forget (low is forgotten) and retain (high is kept), 95% intervals", fontsize=10)
    fig.tight_layout()
    save(fig, path)
