"""Experiments side by side: rows from `dvc exp show --json`, the comparison CSV and the Pareto
plot (forget quality against model utility, one point per experiment)."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..evaluation.metrics.table import benchmark_only, comparison_columns

# The run's own columns around the metric columns of the metrics table (metrics/table.py).
COLUMNS = ["method", "lr", "epochs", "seed", "unlearn_seed", *(column for _, _, column in comparison_columns()), "seconds"]
EXTRA = ["experiment", "rev", "knobs", "stop_reason"]


def metrics_file(data: dict, path: str) -> dict:
    return ((data.get("metrics") or {}).get(path) or {}).get("data") or {}


def restore_lists(exp_show: list[dict], read: Callable[[str, str], str | None]) -> None:
    """Put back the list-valued metrics (`<name>_ci95` intervals) that `dvc exp show --json`
    leaves out: every metrics file of every commit and experiment is replaced, in place, by its
    full JSON as `read(rev, path)` returns it (None where that commit does not have the file).
    Metrics are kept in git (`cache: false`), so `git show <rev>:<path>` has them."""
    for entry in exp_show:
        revs = [entry] if entry.get("rev") != "workspace" else []
        revs += [rev for exp in entry.get("experiments") or [] for rev in exp.get("revs") or []]
        for rev in revs:
            for path, block in ((rev.get("data") or {}).get("metrics") or {}).items():
                text = read(rev["rev"], path) if isinstance(block, dict) and "data" in block else None
                if text:
                    block["data"] = json.loads(text)


def git_file(rev: str, path: str) -> str | None:
    """A file as commit `rev` has it (None where it has none)."""
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def load_exp_show(dvc: str, args: list[str]) -> list[dict]:
    """`dvc exp show --json <args>` of the repository here, with the list-valued metrics put back
    (restore_lists); RuntimeError with dvc's message when it fails."""
    done = subprocess.run([dvc, "exp", "show", "--json", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dvc exp show failed: {done.stderr.strip()}")
    data = json.loads(done.stdout)
    restore_lists(data, git_file)
    return data


def dig(d: dict, *keys):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def row_of(name: str, rev: str, data: dict) -> dict | None:
    """One comparison row from an experiment's params and metrics; None when it has no
    unlearning results (a failed or never-run experiment)."""
    unlearn, unlearned = metrics_file(data, "metrics/unlearn.json"), metrics_file(data, "metrics/unlearned.json")
    if not unlearn or not unlearned:
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    knobs = unlearn.get("knobs") or {}
    row = {"method": unlearn.get("method"), "lr": unlearn.get("lr"),
           "epochs": unlearn.get("epochs", dig(params, "unlearn", "epochs")),
           "seed": params.get("seed"), "unlearn_seed": dig(params, "unlearn", "seed")}
    for set_name, metric, column in comparison_columns():
        row[column] = unlearned.get(metric) if set_name is None else dig(unlearned, set_name, metric)
    row["seconds"] = unlearn.get("seconds")
    return {
        **row,
        **robustness_headline(data),
        "experiment": name,
        "rev": rev[:7],
        "knobs": " ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(knobs.items())),
        "stop_reason": unlearn.get("stop_reason", ""),
    }


def robustness_headline(data: dict) -> dict:
    """Does the forgetting hold: the `headline` block each robustness stage writes into its
    metrics file, and the summary's `robustness_score` verdict (empty for experiments run before
    those stages)."""
    out = {}
    for path in sorted(data.get("metrics") or {}):
        block = metrics_file(data, path).get("headline")
        if isinstance(block, dict):
            out.update({k: v for k, v in block.items() if not k.endswith("_reason")})
    verdict = metrics_file(data, "metrics/summary.json").get("robustness_score")
    if verdict is not None:
        out["robustness_score"] = verdict
    return out


def robustness_columns(rows: list[dict]) -> list[str]:
    """Every robustness headline key any row has, in order of first appearance."""
    known = set(COLUMNS + EXTRA)
    return list(dict.fromkeys(k for r in rows for k in r if k not in known))


def baselines(exp_show: list[dict]) -> list[dict]:
    """The commit entries of `dvc exp show --json` output, newest first by commit time (`dvc exp
    show` lists repeated `--rev`s in the order given), without the workspace; a commit that repeats
    a newer one's run (same deps and the same params the run reads, as when only the docs, the
    tables or another method's knobs changed) keeps its experiments but loses its own row."""
    entries = sorted((e for e in exp_show if e.get("rev") != "workspace"),
                     key=lambda e: str((e.get("data") or {}).get("timestamp") or ""), reverse=True)
    out, seen = [], set()
    for entry in entries:
        data = entry.get("data") or {}
        run = json.dumps([data.get("deps"), _params_read(data.get("params"))], sort_keys=True) if data else None
        if run in seen:
            entry = {**entry, "data": None}  # keep its experiments, drop the repeated run
        seen.add(run)
        out.append(entry)
    return out


def _params_read(params: Optional[dict]) -> Optional[dict]:
    """`dvc exp show` params without the knobs of methods other than the run's own: the unlearn
    stage lists all of `methods`, but a method reads only its entry, so retuning one method's
    default leaves the others' runs what they were."""
    out = {}
    for path, entry in (params or {}).items():
        data = dict((entry or {}).get("data") or {})
        if isinstance(data.get("methods"), dict):
            data["methods"] = {data.get("method"): data["methods"].get(data.get("method"))}
        out[path] = data
    return out


def mixed_pipelines(exp_show: list[dict]) -> dict[str, list[str]]:
    """Baseline commits whose code deps (`.py` files and the source folders, such as
    src/unlearn_lab/training/methods, that stages list whole) differ from the newest one's, each with the
    paths that differ: their experiments ran other code, so their rows may not compare with the rest."""
    def code(entry):
        return {path: dep.get("hash") for path, dep in ((entry.get("data") or {}).get("deps") or {}).items()
                if path.endswith(".py") or path.startswith(("src/", "stages/"))}
    commits = [e for e in baselines(exp_show) if e.get("data")]
    newest = code(commits[0]) if commits else {}
    out = {}
    for entry in commits[1:]:
        theirs = code(entry)
        differ = sorted(p for p in set(newest) | set(theirs) if newest.get(p) != theirs.get(p))
        if differ:
            out[entry["rev"][:7]] = differ
    return out


def runs(exp_show: list[dict], include_baseline: bool = True):
    """(name, rev, data, baseline) of every baseline commit and experiment in `dvc exp show --json`
    output, `baseline` being the full hash of the commit it ran on; the workspace entry is skipped
    (it repeats HEAD or holds uncommitted results), and so are experiments still queued or running,
    and a commit that repeats a newer commit's run (`baselines`)."""
    for entry in baselines(exp_show):
        if include_baseline and entry.get("data"):
            yield entry.get("name") or entry["rev"][:7], entry["rev"], entry["data"], entry["rev"]
        for exp in entry.get("experiments") or []:
            # a queued or running experiment shows its baseline's metrics under its own name
            if (exp.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue
            for rev in exp.get("revs") or []:
                if rev.get("data") and not rev.get("error"):
                    yield rev.get("name") or exp.get("name") or rev["rev"][:7], rev["rev"], rev["data"], entry["rev"]


def experiments(exp_show: list[dict], include_baseline: bool = True):
    """(name, rev, data) of each of `runs`."""
    for name, rev, data, _ in runs(exp_show, include_baseline):
        yield name, rev, data


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (str(r["method"]), r["lr"] or 0.0, r["experiment"]))


# What the studies vary and a method comparison must hold fixed: the benchmark, the split and the
# forget set (the scale study forgets other sets; `data.benchmark=documents` measures other things),
# and the number of requests. An experiment belongs to the method comparison only where all of
# these equal the newest baseline commit's params.yaml.
STUDY_AXES = ("data.benchmark", "data.split", "data.people", "data.holdout_people", "data.forget_fraction",
              "data.world_forget", "data.import", "data.documents", "unlearn.requests")
# Named study experiments are left out as well: a `requests-` experiment runs the unlearn stage
# alone (its other metrics are stale), whatever its number of requests.
SCALE_PREFIX = "scale-"
STUDY_PREFIXES = (SCALE_PREFIX, "requests-")


def study_axes(data: dict, axes=STUDY_AXES) -> dict:
    """The values of `axes` in a run's params.yaml (None where unset)."""
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    return {axis: dig(params, *axis.split(".")) for axis in axes}


def reference_axes(exp_show: list[dict]) -> dict | None:
    """The study axes of the newest baseline commit (None without one)."""
    for entry in baselines(exp_show):
        if entry.get("data"):
            return study_axes(entry["data"])
    return None


def in_method_comparison(name: str, data: dict, reference: dict | None) -> bool:
    return not name.startswith(STUDY_PREFIXES) and (reference is None or study_axes(data) == reference)


def experiment_rows(exp_show: list[dict], include_baseline: bool = True) -> list[dict]:
    """Every experiment with unlearning results, sorted by method, then learning rate, then name;
    only those on the default pipeline's study axes (`in_method_comparison`)."""
    reference = reference_axes(exp_show)
    return sort_rows(drop_repeats([row for name, rev, data in experiments(exp_show, include_baseline)
                                   if in_method_comparison(name, data, reference) and (row := row_of(name, rev, data))]))


def drop_repeats(rows: list[dict]) -> list[dict]:
    """Rows without those that repeat an earlier row in everything but name, commit, wall times
    and the robustness headlines: the same configuration and seeds giving the same unlearned
    model's results is one run done twice (a baseline rerun on a commit whose code or audit
    settings changed elsewhere), and counting it twice would make one seed look like two.
    Results count as the same to 6 significant digits (a rerun on one machine agrees to 1e-6,
    docs/reproducibility.md). `experiments` yields the newest commit first, so its row (and its audit) stays."""
    def same(v):
        return float(f"{v:.6g}") if isinstance(v, float) else v

    # The robustness headlines follow the audit's own settings (quantization schemes, logit-lens
    # layers): an audit setting changed between two commits must not make one run look like two.
    audit = set(robustness_columns(rows))
    seen, out = set(), []
    for row in rows:
        key = json.dumps({k: same(v) for k, v in row.items()
                          if k not in ("experiment", "rev") and "seconds" not in k and k not in audit},
                         sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def reference_points(exp_show: list[dict]) -> dict[str, dict]:
    """Target and oracle utility / forget quality from the newest baseline commit."""
    for entry in baselines(exp_show):
        if not entry.get("data"):
            continue
        out = {}
        for model in ("target", "oracle"):
            m = metrics_file(entry["data"], f"metrics/{model}.json")
            if m.get("model_utility") is not None:
                out[model] = {"model_utility": m["model_utility"], "forget_quality": m.get("forget_quality"),
                              "forget_rouge_l": dig(m, "forget", "rouge_l_recall"),
                              "forget_fluency_perplexity": dig(m, "forget", "fluency_perplexity")}
        return out
    return {}


def write_csv(rows: list[dict], path: str | Path) -> None:
    import pandas as pd

    from ..io import write_text_atomic

    frame = pd.DataFrame(rows, columns=COLUMNS + robustness_columns(rows) + EXTRA)
    # One benchmark's columns (the documents' verbmem, knowmem) only where an experiment has them.
    only = {column for _, name, column in comparison_columns() if name in benchmark_only()}
    frame = frame.drop(columns=[c for c in only if frame[c].isna().all()])
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both forget quality and model utility (higher is better)."""
    ok = [r for r in rows if r["forget_quality"] is not None and r["model_utility"] is not None]
    return [r for r in ok if not any(
        o["forget_quality"] >= r["forget_quality"] and o["model_utility"] >= r["model_utility"]
        and (o["forget_quality"] > r["forget_quality"] or o["model_utility"] > r["model_utility"]) for o in ok)]


def plot_pareto(rows: list[dict], references: dict, path: str | Path) -> None:
    """Forget quality against utility, one point per experiment; a configuration run with several
    seeds is one point at its mean (geometric for forget quality) with 95% interval bars."""
    from ..figures import pyplot, save
    from .seeds import seed_summary

    plt = pyplot()
    ok = [r for r in rows if r["forget_quality"] is not None and r["model_utility"] is not None]
    points = []
    for g in seed_summary(ok):
        point = {"method": g["method"], "model_utility": g["model_utility_mean"],
                 "forget_quality": g["forget_quality_mean"], "runs": g["runs"]}
        if g["runs"] > 1:
            point["xerr"] = (g["model_utility_mean"] - g["model_utility_lo"], g["model_utility_hi"] - g["model_utility_mean"])
            point["yerr"] = (g["forget_quality_mean"] - g["forget_quality_lo"], g["forget_quality_hi"] - g["forget_quality_mean"])
        points.append(point)
    front = sorted(pareto_front(points), key=lambda r: r["model_utility"])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    single = [p for p in points if p["runs"] == 1]
    ax.scatter([p["model_utility"] for p in single], [p["forget_quality"] for p in single], color="tab:blue", zorder=3)
    for p in points:
        if p["runs"] > 1:
            ax.errorbar([p["model_utility"]], [p["forget_quality"]], xerr=np.array(p["xerr"]).reshape(2, 1),
                        yerr=np.array(p["yerr"]).reshape(2, 1), fmt="o", color="tab:blue", ecolor="tab:blue",
                        elinewidth=1, capsize=3, alpha=0.8, zorder=3)
    # Forget quality takes few distinct values (a KS p-value on a small forget set), so many
    # points share a row: alternate their labels above and below the point.
    seen: dict[float, int] = {}
    for r in sorted(points, key=lambda r: r["model_utility"]):
        nth = seen.setdefault(round(math.log10(max(r["forget_quality"], 1e-300)), 2), 0)
        seen[round(math.log10(max(r["forget_quality"], 1e-300)), 2)] = nth + 1
        above = nth % 2 == 0
        text = r["method"] + (f" ({r['runs']} seeds)" if r["runs"] > 1 else "")
        ax.annotate(text, (r["model_utility"], r["forget_quality"]), fontsize=8, rotation=30 if above else 0,
                    xytext=(3, 4) if above else (-4, -6), textcoords="offset points",
                    ha="left" if above else "center", va="bottom" if above else "top")
    if len(front) > 1:
        ax.plot([r["model_utility"] for r in front], [r["forget_quality"] for r in front], color="tab:blue",
                alpha=0.4, label="Pareto front")
    for model, style in (("target", ("tab:red", "x")), ("oracle", ("tab:green", "*"))):
        ref = references.get(model)
        if ref and ref.get("forget_quality") is not None:
            ax.scatter([ref["model_utility"]], [ref["forget_quality"]], color=style[0], marker=style[1], s=120,
                       label=model, zorder=4)
        elif ref:
            ax.axvline(ref["model_utility"], color=style[0], ls="--", lw=1, label=f"{model} utility")
    if "target" in references:
        ax.axvline(0.9 * references["target"]["model_utility"], color="grey", ls=":", lw=1,
                   label="90% of target utility")
    ax.set_yscale("log")
    lows = [r["forget_quality"] - r.get("yerr", (0.0, 0.0))[0] for r in points]
    lows = [v for v in lows if v > 0]
    if lows:
        ax.set_ylim(min(lows) / 3, max(lows) * 4)  # room for the labels
    ax.set_xlabel("model utility (higher keeps more)")
    ax.set_ylabel("forget quality, KS p-value vs oracle (log; higher forgets better)")
    ax.set_title("Unlearning experiments: forget quality vs model utility\n(labels: method; bars: 95% interval over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    save(fig, path, dpi=110)


def best_forgetter(rows: list[dict], target_utility: float, fraction: float = 0.9) -> dict | None:
    """The row with the highest forget quality among those keeping >= fraction of the target's utility."""
    ok = [r for r in rows if r["model_utility"] is not None and r["forget_quality"] is not None
          and math.isfinite(r["forget_quality"]) and r["model_utility"] >= fraction * target_utility]
    return max(ok, key=lambda r: r["forget_quality"]) if ok else None
