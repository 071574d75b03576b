"""Experiments side by side: rows from `dvc exp show --json`, the comparison CSV and the Pareto
plot (forget quality against model utility, one point per experiment)."""
from __future__ import annotations

import math
from pathlib import Path

COLUMNS = ["method", "lr", "epochs", "forget_rouge_l", "retain_rouge_l", "world_rouge_l",
           "forget_truth_ratio", "forget_quality", "model_utility", "seconds"]
# Does the forgetting hold (metrics/summary.json; empty for experiments run before those stages)
ROBUSTNESS = ["quant_int4_recovered", "relearn_recovered", "probe_forget_accuracy_max", "lens_forget_accuracy_max"]
EXTRA = ["experiment", "rev", "knobs", "stop_reason"]


def _file(data: dict, path: str) -> dict:
    return ((data.get("metrics") or {}).get(path) or {}).get("data") or {}


def _dig(d: dict, *keys):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def row_of(name: str, rev: str, data: dict) -> dict | None:
    """One comparison row from an experiment's params and metrics; None when it has no
    unlearning results (a failed or never-run experiment)."""
    unlearn, unlearned = _file(data, "metrics/unlearn.json"), _file(data, "metrics/unlearned.json")
    if not unlearn or not unlearned:
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    knobs = unlearn.get("knobs") or {}
    summary = _file(data, "metrics/summary.json")
    return {
        "method": unlearn.get("method"),
        "lr": unlearn.get("lr"),
        "epochs": unlearn.get("epochs", _dig(params, "unlearn", "epochs")),
        "forget_rouge_l": _dig(unlearned, "forget", "rouge_l_recall"),
        "retain_rouge_l": _dig(unlearned, "retain", "rouge_l_recall"),
        "world_rouge_l": _dig(unlearned, "world", "rouge_l_recall"),
        "forget_truth_ratio": _dig(unlearned, "forget", "truth_ratio"),
        "forget_quality": unlearned.get("forget_quality"),
        "model_utility": unlearned.get("model_utility"),
        "seconds": unlearn.get("seconds"),
        **{key: summary.get(key) for key in ROBUSTNESS},
        "experiment": name,
        "rev": rev[:7],
        "knobs": " ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(knobs.items())),
        "stop_reason": unlearn.get("stop_reason", ""),
    }


def experiment_rows(exp_show: list[dict], include_baseline: bool = True) -> list[dict]:
    """Every experiment of every baseline commit in `dvc exp show --json` output (the
    workspace entry is skipped: it repeats HEAD or holds uncommitted results), sorted by
    method, then learning rate, then experiment name."""
    rows = []
    for entry in exp_show:
        if entry.get("rev") == "workspace":
            continue
        if include_baseline and entry.get("data"):
            row = row_of(entry.get("name") or entry["rev"][:7], entry["rev"], entry["data"])
            if row:
                rows.append(row)
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data") and not rev.get("error"):
                    row = row_of(rev.get("name") or exp.get("name") or rev["rev"][:7], rev["rev"], rev["data"])
                    if row:
                        rows.append(row)
    return sorted(rows, key=lambda r: (str(r["method"]), r["lr"] or 0.0, r["experiment"]))


def reference_points(exp_show: list[dict]) -> dict[str, dict]:
    """Target and oracle utility / forget quality from the newest baseline commit."""
    for entry in exp_show:
        if entry.get("rev") == "workspace" or not entry.get("data"):
            continue
        out = {}
        for model in ("target", "oracle"):
            m = _file(entry["data"], f"metrics/{model}.json")
            if m.get("model_utility") is not None:
                out[model] = {"model_utility": m["model_utility"], "forget_quality": m.get("forget_quality"),
                              "forget_rouge_l": _dig(m, "forget", "rouge_l_recall")}
        return out
    return {}


def write_csv(rows: list[dict], path: str | Path) -> None:
    import pandas as pd

    from .io import write_text_atomic

    frame = pd.DataFrame(rows, columns=COLUMNS + ROBUSTNESS + EXTRA)
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both forget quality and model utility (higher is better)."""
    ok = [r for r in rows if r["forget_quality"] is not None and r["model_utility"] is not None]
    return [r for r in ok if not any(
        o["forget_quality"] >= r["forget_quality"] and o["model_utility"] >= r["model_utility"]
        and (o["forget_quality"] > r["forget_quality"] or o["model_utility"] > r["model_utility"]) for o in ok)]


def plot_pareto(rows: list[dict], references: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["forget_quality"] is not None and r["model_utility"] is not None]
    front = sorted(pareto_front(ok), key=lambda r: r["model_utility"])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter([r["model_utility"] for r in ok], [r["forget_quality"] for r in ok], color="tab:blue", zorder=3)
    # Forget quality takes few distinct values (a KS p-value on a small forget set), so many
    # points share a row: alternate their labels above and below the point.
    seen: dict[float, int] = {}
    for r in sorted(ok, key=lambda r: r["model_utility"]):
        nth = seen.setdefault(round(math.log10(max(r["forget_quality"], 1e-300)), 2), 0)
        seen[round(math.log10(max(r["forget_quality"], 1e-300)), 2)] = nth + 1
        above = nth % 2 == 0
        ax.annotate(r["method"], (r["model_utility"], r["forget_quality"]), fontsize=8, rotation=30 if above else 0,
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
    lows = [r["forget_quality"] for r in ok if r["forget_quality"] > 0]
    if lows:
        ax.set_ylim(min(lows) / 3, max(lows) * 4)  # room for the labels
    ax.set_xlabel("model utility (higher keeps more)")
    ax.set_ylabel("forget quality, KS p-value vs oracle (log; higher forgets better)")
    ax.set_title("Unlearning experiments: forget quality vs model utility (labels: method)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def best_forgetter(rows: list[dict], target_utility: float, fraction: float = 0.9) -> dict | None:
    """The row with the highest forget quality among those keeping >= fraction of the target's utility."""
    ok = [r for r in rows if r["model_utility"] is not None and r["forget_quality"] is not None
          and math.isfinite(r["forget_quality"]) and r["model_utility"] >= fraction * target_utility]
    return max(ok, key=lambda r: r["forget_quality"]) if ok else None
