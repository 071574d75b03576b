"""The headline numbers of one run (metrics/summary.json)."""
from __future__ import annotations


from .metrics.table import headline
from ..settings import Settings


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def build_summary(models: dict[str, dict], settings: Settings, unlearn_report: dict | None = None,
                  robustness: dict | None = None) -> dict:
    """Headline metrics per model, and the run's sanity checks as ratios and booleans.

    The method and learning rate are those the unlearning run used (`lr: null` in params means
    the method's own default)."""
    report = unlearn_report or {}
    summary = {"method": report.get("method", settings.method), "lr": report.get("lr", settings.lr),
               "benchmark": settings.data.benchmark}
    for name, metrics in models.items():
        if metrics.get("available", True):
            summary[name] = headline(metrics)
        else:
            summary[name] = {"available": False, "reason": metrics.get("reason", "")}
    t, u, b = summary.get("target", {}), summary.get("unlearned", {}), summary.get("base", {})
    checks = {}
    if "world_rouge_l_recall" in t and "world_rouge_l_recall" in b:
        checks["target_world_vs_base"] = _ratio(t["world_rouge_l_recall"], b["world_rouge_l_recall"])
    if "forget_rouge_l_recall" in t and "forget_rouge_l_recall" in u:
        checks["unlearned_forget_vs_target"] = _ratio(u["forget_rouge_l_recall"], t["forget_rouge_l_recall"])
        checks["unlearned_retain_vs_target"] = _ratio(u["retain_rouge_l_recall"], t["retain_rouge_l_recall"])
    if "model_utility" in t and "model_utility" in u:
        checks["unlearned_utility_vs_target"] = _ratio(u["model_utility"], t["model_utility"])
    summary["checks"] = checks
    summary.update(robustness or {})
    return summary


MODELS = ("target", "oracle", "unlearned")


def _cell(value, interval) -> str:
    if value is None:
        return "-"
    text = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if interval:
        lo, hi = interval
        text += f" [{lo:.3g}, {hi:.3g}]" if max(abs(lo), abs(hi)) < 10 else f" [{lo:.1f}, {hi:.1f}]"
    return text


def summary_table(summary: dict) -> str:
    """The run on one screen: each headline metric of target, oracle and unlearned with its 95%
    interval over questions, then the sanity checks and the robustness headline."""
    models = {m: summary.get(m) or {} for m in MODELS}
    keys = list(dict.fromkeys(k for m in models.values() for k, v in m.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)))
    sizes = next((m["forget_quality_sizes"] for m in models.values() if "forget_quality_sizes" in m), None)
    label = {"forget_quality": f"forget_quality (KS, n={sizes['model']} vs {sizes['oracle']})"} if sizes else {}
    cells = [[label.get(k, k)] + [_cell(models[m].get(k), models[m].get(f"{k}_ci95")) for m in MODELS] for k in keys]
    widths = [max(len(row[i]) for row in cells + [["metric", *MODELS]]) for i in range(4)]
    line = " | ".join
    out = [f"{summary.get('method')} lr={summary.get('lr')} on {summary.get('benchmark')}; "
           "[95% bootstrap interval over questions]",
           line(h.ljust(w) for h, w in zip(["metric", *MODELS], widths)),
           "-+-".join("-" * w for w in widths)]
    out += [line(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    checks = summary.get("checks") or {}
    if checks:
        out.append("checks: " + ", ".join(f"{k} {v:.3g}" for k, v in checks.items() if v is not None))
    robust = {k: v for k, v in summary.items() if k not in (*MODELS, "base", "checks", "method", "lr", "benchmark")
              and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if robust:
        out.append("robustness: " + ", ".join(f"{k} {v:.3g}" for k, v in robust.items()))
    return "\n".join(out)


def run_machine(sources: dict[str, dict]) -> dict:
    """{"machine": ...}: the machine choices the summarised metrics were made with. Each stage
    records the ones it used (a fine-tune its precision, an evaluation its batch sizes): merged
    into one record when no two disagree, else each file's, so that a run whose stages ran with
    different choices says so rather than naming one."""
    records = {name: doc["machine"] for name, doc in sources.items() if isinstance(doc.get("machine"), dict)}
    merged: dict = {}
    for record in records.values():
        for key, value in record.items():
            if merged.setdefault(key, value) != value:
                return {"machine": records}
    return {"machine": dict(sorted(merged.items()))} if merged else {}
