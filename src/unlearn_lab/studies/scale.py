"""Scalability (MUSE): how forgetting and utility change with the size of the forget set. Each
size is a DVC experiment named `scale-<n>p` that forgets n people (`data.forget_fraction`), with the
target, the oracle and the unlearned model trained and evaluated anew; the committed run is the
point at its own size. `make scale` runs them; this module reads them back and draws the plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .comparison import SCALE_PREFIX, STUDY_AXES, dig, metrics_file, runs, study_axes
from ..data.synthetic import n_forget_people
from ..figures import pyplot, save
from .readme_blocks import commits_line
from .rows import cell, error_bars, put

COLUMNS = ("forget_quality", "model_utility", "forget_rouge_l_recall")


def experiment_name(people: int) -> str:
    return f"{SCALE_PREFIX}{people}p"


def forget_fraction(people: int, total: int) -> float:
    """The `data.forget_fraction` that forgets exactly `people` of `total` (n_forget_people's
    rounding), as a short decimal."""
    if not 1 <= people < total:
        raise ValueError(f"forget {people} of {total} people: it must be at least 1 and leave someone to retain")
    fraction = round(people / total, 6)
    assert n_forget_people(fraction, total) == people
    return fraction


# What a scale experiment may change: only the size of the forget set.
SAME = tuple(axis for axis in STUDY_AXES if axis != "data.forget_fraction")


def size_row(name: str, rev: str, data: dict, commit: str) -> dict | None:
    """Forget quality, model utility and forget ROUGE-L recall (with their 95% intervals) of one
    run, with the size of its forget set and the commit it ran on; None without evaluation results."""
    unlearned, unlearn = metrics_file(data, "metrics/unlearned.json"), metrics_file(data, "metrics/unlearn.json")
    if not unlearned.get("forget"):
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    row = {"experiment": name, "rev": rev[:7], "method": unlearn.get("method"),
           "forget_questions": dig(unlearned, "forget", "n"),
           "forget_people": n_forget_people(dig(params, "data", "forget_fraction") or 0.0,
                                            dig(params, "data", "people") or 0)}
    for key in COLUMNS:
        place, metric = (unlearned["forget"], "rouge_l_recall") if key == "forget_rouge_l_recall" else (unlearned, key)
        put(row, key, place, metric)
    row["commit"] = commit
    return row


def scale_rows(exp_show: list[dict], people: list[int] | None = None) -> list[dict]:
    """One row per forget-set size: the newest baseline commit (the committed run) and every
    finished `scale-*` experiment of the commits listed that forgets one of `people` (all where
    None) and differs from the committed run in nothing but the forget set's size (a name run on
    several commits counts once, the newest); sorted by the number of forget questions. `commit`
    is the commit each ran on (an experiment's baseline)."""
    rows, names, committed_axes = [], set(), None
    for name, rev, data, commit in runs(exp_show):
        committed = not rows and not name.startswith(SCALE_PREFIX)
        if committed:
            committed_axes = study_axes(data, SAME)
        elif not (name.startswith(SCALE_PREFIX) and name not in names and study_axes(data, SAME) == committed_axes):
            continue
        names.add(name)
        row = size_row("committed run" if committed else name, rev, data, commit)
        if row and (committed or people is None or row["forget_people"] in people):
            rows.append(row)
        if not rows:
            break
    return sorted(rows, key=lambda r: (r["forget_questions"] or 0, r["experiment"]))


def readme_block(rows: list[dict], csv_path: str = "metrics/scale.csv") -> str:
    """The scale table of docs/studies.md ("Requests one after another, and the size of the forget
    set") from the study's rows."""
    lines = [commits_line(csv_path, rows), "",
             "| forget people | forget questions | forget quality | forget ROUGE-L | model utility | experiment | commit |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['forget_people']:.0f} | {r['forget_questions']:.0f} | {cell(r, 'forget_quality', '.1e')} | "
                     f"{cell(r, 'forget_rouge_l_recall', '.3f')} | {cell(r, 'model_utility', '.3f')} | "
                     f"{r['experiment']} | `{str(r['commit'])[:7]}` |")
    return "\n".join(lines) + "\n"


def scale_plot(rows: list[dict], path: str | Path) -> None:
    """Forget quality (log scale), forget ROUGE-L recall and model utility against the number of
    forget questions, each point with its 95% interval over the questions."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = np.array([r["forget_questions"] for r in rows], dtype=float)
    titles = {"forget_quality": "forget quality (KS p-value vs the oracle)", "model_utility": "model utility",
              "forget_rouge_l_recall": "forget ROUGE-L recall"}
    for ax, key in zip(axes, COLUMNS):
        title = titles[key]
        y, err = error_bars(rows, key)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, color="tab:blue")
        for xi, yi, r in zip(x, y, rows):
            ax.annotate(f"{r['forget_people']} people", (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if key == "forget_quality":
            ax.set_yscale("log")
            ax.axhline(0.05, color="grey", ls=":", lw=1)
        else:
            ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("forget questions")
        ax.grid(alpha=0.3, which="both")
    methods = sorted({str(r["method"]) for r in rows})
    fig.suptitle(f"Forget-set size: {', '.join(methods)}, oracle retrained at each size (bars: 95% intervals)")
    fig.tight_layout()
    save(fig, path)
