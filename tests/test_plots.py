"""The plots stage's figures and the before/after table, on constructed evaluation outputs."""
from unlearn_lab.evaluation.plots import (
    before_after_markdown, before_after_plot, before_after_rows, metric_bars_plot, retain_split_plot, truth_ratio_plot,
)


def rows_for(model, forget_answer):
    out = [{"id": f"f{i}", "set": "forget", "question": f"Where was F{i} born?", "answer": "Bergen",
            "generated": forget_answer, "truth_ratio": 0.2 + 0.1 * i, "correlated": False} for i in range(5)]
    out += [{"id": f"r{i}", "set": "retain", "question": f"Where was R{i} born?", "answer": "Oslo",
             "generated": "R was born in Oslo.", "truth_ratio": 0.3, "correlated": i % 2 == 0} for i in range(6)]
    return out


def metrics_for(forget_rouge):
    set_metrics = {"rouge_l_recall": 0.9, "prob": 0.8, "truth_ratio": 0.7, "exact_memorization": 0.5}
    return {"forget": {**set_metrics, "rouge_l_recall": forget_rouge}, "retain": set_metrics, "world": set_metrics,
            "retain_correlated": set_metrics, "retain_other": set_metrics, "model_utility": 0.6,
            "mia_minkpp_auc": 0.5, "forget_quality": 0.01}


def test_figures_and_table(tmp_path):
    rows = {"target": rows_for("target", "F was born in Bergen."), "oracle": rows_for("oracle", "in Paris"),
            "unlearned": rows_for("unlearned", "I am not sure.")}
    metrics = {"target": metrics_for(0.95), "oracle": metrics_for(0.0), "unlearned": metrics_for(0.1)}
    truth_ratio_plot(rows, metrics, tmp_path / "tr.png")
    retain_split_plot(metrics, tmp_path / "split.png")
    metric_bars_plot(metrics, tmp_path / "bars.png")
    table = before_after_rows(rows, n=2)
    # two forget questions, then two retain questions with the correlated ones first
    assert [r["set"] for r in table] == ["forget", "forget", "retain", "retain"]
    assert table[2]["question"] == "Where was R0 born?" and table[3]["question"] == "Where was R2 born?"
    assert table[0]["target"] == "F was born in Bergen." and table[0]["unlearned"] == "I am not sure."
    md = before_after_markdown(table)
    assert md.splitlines()[0] == "| set | question | fact | target | oracle | unlearned |"
    assert "| forget | Where was F0 born? | Bergen | F was born in Bergen. | in Paris | I am not sure. |" in md
    before_after_plot(table, tmp_path / "table.png")
    for name in ("tr.png", "split.png", "bars.png", "table.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp*"))
