"""The metrics table drives evaluation, the summary headline, the metric bars and the
comparison: a new metric is its function and one row."""
import numpy as np
import pytest

from unlearn_lab.studies import comparison
from unlearn_lab.evaluation.questions import evaluate_set
from unlearn_lab.evaluation.metrics import table
from unlearn_lab.settings import Eval

from .conftest import qa_record


def test_headline_keys_are_the_documented_ones():
    sets = {s: {k: 0.5 for k in ("rouge_l_recall", "prob", "truth_ratio", "exact_memorization", "bleu")}
            for s in ("forget", "retain", "holdout", "world")}
    metrics = {**sets, "forget_quality": 0.1, "model_utility": 0.6, "privleak": -3.0,
               **{f"mia_{a}_auc": 0.7 for a in ("loss", "zlib", "mink", "minkpp")}}
    expected = {f"{s}_{k}" for s in ("forget", "retain", "world") for k in ("rouge_l_recall", "prob", "truth_ratio")}
    expected |= {"forget_exact_memorization", "forget_quality", "model_utility", "privleak", "mia_loss_auc",
                 "mia_minkpp_auc"}
    assert set(table.headline(metrics)) == expected
    assert table.headline({"world": {"rouge_l_recall": 0.4}}) == {"world_rouge_l_recall": 0.4}


def test_bars_and_columns_follow_the_table():
    assert [label for _, _, label in table.bars()] == [
        "forget ROUGE-L", "retain ROUGE-L", "world ROUGE-L", "forget prob", "retain prob", "forget truth ratio",
        "forget exact memo.", "model utility", "MIA Min-k%++ AUC", "verbmem forget", "verbmem retain",
        "knowmem forget", "knowmem retain", "MIA Min-k% AUC (documents)"]
    assert [c for _, _, c in table.comparison_columns()] == [
        "forget_rouge_l", "retain_rouge_l", "world_rouge_l", "forget_truth_ratio", "forget_quality", "model_utility",
        "verbmem_forget", "verbmem_retain", "knowmem_forget", "knowmem_retain", "privleak_documents"]
    assert table.benchmark_only() == {"verbmem_forget", "verbmem_retain", "knowmem_forget", "knowmem_retain",
                                      "mia_documents_auc", "privleak_documents"}


def test_a_new_metric_is_one_row(monkeypatch, tiny_model, tok):
    extra = table.Metric("answer_chars", "row", lambda s: float(len(s.generated)), "answer length",
                         aggregate=lambda values, set_name: float(np.median(values)),
                         headline=("forget",), plot=("forget",), compare=("forget",))
    monkeypatch.setattr(table, "METRICS", table.METRICS + (extra,))
    records = [qa_record(i) for i in range(3)]
    rows, summary = evaluate_set(tiny_model, tok, records, Eval(max_new_tokens=4), "forget", bertscore=False)
    assert [r["answer_chars"] for r in rows] == [float(len(r["generated"])) for r in rows]
    assert summary["answer_chars"] == float(np.median([len(r["generated"]) for r in rows]))
    assert table.headline({"forget": summary})["forget_answer_chars"] == summary["answer_chars"]
    assert (("forget", "answer_chars", "forget answer length")) in table.bars()
    data = {"metrics": {"metrics/unlearn.json": {"data": {"method": "ga", "lr": 1e-4}},
                        "metrics/unlearned.json": {"data": {"forget": summary}}}}
    assert comparison.row_of("exp", "abcdef0", data)["forget_answer_chars"] == summary["answer_chars"]


def context(**metrics):
    return table.ModelContext(metrics, [], None, None)


def test_model_level_reasons():
    privleak = table.BY_NAME["privleak"].compute
    ctx = table.ModelContext({"mia_mink_auc": 0.8}, [], None, {"mia_mink_auc": 1.0})
    with pytest.raises(table.Undefined, match="AUC is 1"):
        privleak(ctx)
    ctx.oracle_metrics = {"mia_mink_auc": 0.6}
    assert privleak(ctx) == pytest.approx(((1 - 0.8) - 0.4) / 0.4 * 100)
    assert privleak(context(mia_mink_auc=0.8)) is None  # no oracle: nothing to compare with
    with pytest.raises(table.Undefined, match="no holdout"):
        table.BY_NAME["mia_loss_auc"].compute(context(forget={"n": 1}))
    assert table.BY_NAME["model_utility"].compute(context(retain={})) is None
