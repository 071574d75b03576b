"""Reference and gradient-norm membership inference, their privacy-leakage variants, and the
fluency of generations, each against an independent computation."""
import numpy as np
import pytest
import torch

from unlearn_lab.evaluation.questions import answer_nlls, evaluate_model, evaluate_set, gradient_norms
from unlearn_lab.models.logprobs import answer_logprobs
from unlearn_lab.evaluation.metrics import table
from unlearn_lab.evaluation.metrics.mia import privleak
from unlearn_lab.evaluation.metrics.text import repetition_rate
from unlearn_lab.models.loading import collate, encode_qa
from unlearn_lab.settings import Eval

from .conftest import qa_record


def pairwise_auc(members, nonmembers):
    return np.mean([1.0 if m > n else 0.5 if m == n else 0.0 for m in members for n in nonmembers])


def test_repetition_rate_by_hand():
    assert repetition_rate("a b a b a b") == pytest.approx(1 - 2 / 5)  # bigrams ab ba ab ba ab
    assert repetition_rate("one two three four") == 0.0
    assert repetition_rate("one two") == 0.0  # a single bigram: nothing can repeat
    assert repetition_rate("") == 0.0


def test_reference_attack_auc_and_privleak_by_hand():
    ours = {("forget", "f1"): -0.5, ("forget", "f2"): -1.0, ("holdout", "h1"): -2.0, ("holdout", "h2"): -0.9}
    oracle = {("forget", "f1"): -2.0, ("forget", "f2"): -1.1, ("holdout", "h1"): -2.5, ("holdout", "h2"): -0.4}
    rows = [{"set": s, "id": i, "mia_loss": v} for (s, i), v in ours.items()]
    oracle_rows = [{"set": s, "id": i, "mia_loss": v} for (s, i), v in oracle.items()]
    ctx = table.ModelContext({"forget": {}, "holdout": {}}, rows, oracle_rows, {})
    diff = {k: ours[k] - oracle[k] for k in ours}  # forget 1.5, 0.1; holdout 0.5, -0.5
    expected = pairwise_auc([diff[("forget", "f1")], diff[("forget", "f2")]],
                            [diff[("holdout", "h1")], diff[("holdout", "h2")]])
    assert expected == pytest.approx(0.75)
    auc = table.BY_NAME["mia_reference_auc"].compute(ctx)
    assert auc == pytest.approx(expected)
    ctx.metrics["mia_reference_auc"] = auc
    assert table.BY_NAME["privleak_reference"].compute(ctx) == pytest.approx(((1 - 0.75) - 0.5) / 0.5 * 100)
    ctx.oracle_rows = oracle_rows[1:]
    with pytest.raises(table.Undefined, match="no forget row for id 'f1'"):
        table.BY_NAME["mia_reference_auc"].compute(ctx)


def test_gradnorm_privleak_needs_the_oracles_auc():
    compute = table.BY_NAME["privleak_gradnorm"].compute
    ctx = table.ModelContext({"mia_gradnorm_auc": 0.9}, [], None, {"mia_gradnorm_auc": 0.6})
    assert compute(ctx) == pytest.approx(privleak(0.9, 0.6))
    ctx.oracle_metrics = {}
    with pytest.raises(table.Undefined, match="no gradnorm"):
        compute(ctx)


def test_gradient_norms_match_a_plain_backward(tiny_model, tok):
    pairs = [("Where does person 1 live?", "In Town1."), ("What is 2+2?", "Four.")]
    norms = gradient_norms(tiny_model, tok, pairs)
    for (q, a), norm in zip(pairs, norms):
        tiny_model.zero_grad()
        b = collate([encode_qa(tok, q, a, 128)], tok.pad_token_id)
        logp, count = answer_logprobs(tiny_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                      b["labels"])
        (-logp.sum() / count.sum()).backward()
        by_hand = torch.sqrt(sum(p.grad.double().square().sum() for p in tiny_model.parameters() if p.grad is not None))
        assert norm == pytest.approx(float(by_hand), rel=1e-5)
    tiny_model.zero_grad(set_to_none=True)
    gradient_norms(tiny_model, tok, pairs[:1])
    assert all(p.grad is None for p in tiny_model.parameters())  # the weights' .grad left alone


def test_fluency_and_gradnorm_rows(tiny_model, tok):
    records = [qa_record(i) for i in range(3)]
    cfg = Eval(max_new_tokens=4)
    rows, summary = evaluate_set(tiny_model, tok, records, cfg, "forget", bertscore=False, judge=tiny_model)
    assert all("mia_gradnorm" not in r for r in rows)  # optional: left out with the cheap metrics
    nll = answer_nlls(tiny_model, tok, [(r["question"], r["generated"]) for r in rows])
    assert [r["fluency_perplexity"] for r in rows] == pytest.approx(list(np.exp(nll)))
    assert summary["fluency_perplexity"] == pytest.approx(float(np.exp(np.mean(nll))))
    assert summary["repetition_rate"] == pytest.approx(np.mean([repetition_rate(r["generated"]) for r in rows]))
    rows, _ = evaluate_set(tiny_model, tok, records, cfg, "retain", bertscore=False)
    assert all("fluency_perplexity" not in r for r in rows)  # no judge, no fluency


def test_gradnorm_auc_over_forget_and_holdout(tiny_model, tok):
    sets = {"forget": [qa_record(i) for i in range(3)], "holdout": [qa_record(i) for i in range(3, 6)],
            "world": [qa_record(i) for i in range(6, 8)]}
    for r in sets["holdout"]:
        r["split"] = "holdout"
    metrics, rows = evaluate_model(tiny_model, tok, sets, Eval(max_new_tokens=2))
    scores = {s: [r["mia_gradnorm"] for r in rows if r["set"] == s] for s in ("forget", "holdout")}
    assert all("mia_gradnorm" not in r for r in rows if r["set"] == "world")
    assert metrics["mia_gradnorm_auc"] == pytest.approx(pairwise_auc(scores["forget"], scores["holdout"]))
    assert "mia_reference_auc" not in metrics  # no oracle rows: nothing to compare with
