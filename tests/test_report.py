import pytest

from unlearn_lab.evaluation.report import build_summary
from unlearn_lab.settings import parse_settings


def model(forget, retain, world, fq=None, mu=None):
    m = {name: {"rouge_l_recall": v, "prob": v / 2, "truth_ratio": v / 4, "n": 3}
         for name, v in (("forget", forget), ("retain", retain), ("world", world)) if v is not None}
    if fq is not None:
        m["forget_quality"] = fq
    if mu is not None:
        m["model_utility"] = mu
    return m


def test_summary_headlines_and_checks():
    models = {
        "base": model(None, None, 0.5),
        "target": model(1.0, 0.9, 0.45, fq=0.01, mu=0.6),
        "oracle": model(0.1, 0.9, 0.45, mu=0.6),
        "unlearned": model(0.2, 0.72, 0.4, fq=0.5, mu=0.3),
    }
    s = build_summary(models, parse_settings({"method": "npo", "lr": 1e-4, "data": {"benchmark": "synthetic"}}))
    assert s["method"] == "npo" and s["benchmark"] == "synthetic"
    assert s["unlearned"]["forget_rouge_l_recall"] == 0.2 and s["unlearned"]["forget_prob"] == 0.1
    assert s["checks"]["target_world_vs_base"] == pytest.approx(0.9)
    assert s["checks"]["unlearned_forget_vs_target"] == pytest.approx(0.2)
    assert s["checks"]["unlearned_retain_vs_target"] == pytest.approx(0.8)
    assert s["checks"]["unlearned_utility_vs_target"] == pytest.approx(0.5)


def test_summary_keeps_the_reason_for_a_missing_oracle():
    models = {"base": model(None, None, 0.5), "target": model(1.0, 0.9, 0.45),
              "oracle": {"available": False, "reason": "world benchmark: no oracle"},
              "unlearned": model(0.2, 0.8, 0.4)}
    s = build_summary(models, parse_settings({"method": "ga", "lr": 1e-5, "data": {"benchmark": "world"}}))
    assert s["oracle"] == {"available": False, "reason": "world benchmark: no oracle"}
    assert "forget_quality" not in s["unlearned"]


def test_summary_reports_the_lr_the_run_used():
    models = {"base": model(None, None, 0.5), "target": model(1.0, 0.9, 0.45), "oracle": model(0.1, 0.9, 0.45),
              "unlearned": model(0.2, 0.8, 0.4)}
    params = parse_settings({"method": "npo", "lr": None, "data": {"benchmark": "synthetic"}})
    s = build_summary(models, params, {"method": "npo", "lr": 2.5e-4})
    assert s["lr"] == 2.5e-4
    assert build_summary(models, params)["lr"] is None


def test_summary_table_shows_each_model_with_its_interval():
    from unlearn_lab.evaluation.report import summary_table

    summary = {"method": "npo", "lr": 2.5e-4, "benchmark": "synthetic",
               "target": {"forget_rouge_l_recall": 0.9375, "forget_rouge_l_recall_ci95": [0.85, 1.0],
                          "forget_quality": 0.003, "forget_quality_sizes": {"model": 16, "oracle": 16},
                          "privleak": -94.2, "privleak_ci95": [-100.0, -80.5]},
               "oracle": {"forget_rouge_l_recall": 0.07, "privleak": 0.0},
               "unlearned": {"forget_rouge_l_recall": 0.448, "forget_rouge_l_recall_ci95": [0.229, 0.646]},
               "checks": {"unlearned_forget_vs_target": 0.478}, "robustness_score": 0.72}
    lines = summary_table(summary).splitlines()
    row = next(line for line in lines if line.startswith("forget_rouge_l_recall"))
    assert [c.strip() for c in row.split("|")] == ["forget_rouge_l_recall", "0.938 [0.85, 1]", "0.07", "0.448 [0.229, 0.646]"]
    assert any(line.startswith("forget_quality (KS, n=16 vs 16)") and line.split("|")[2].strip() == "-" for line in lines)
    assert any("-94.2 [-100.0, -80.5]" in line for line in lines)
    assert lines[-2] == "checks: unlearned_forget_vs_target 0.478" and lines[-1] == "robustness: robustness_score 0.72"
    assert not any("ci95" in line or "sizes" in line for line in lines)
