"""The headline numbers of one run (metrics/summary.json)."""
from __future__ import annotations

from .metrics.table import headline
from .settings import Settings


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
