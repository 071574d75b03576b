"""Definitions that must match the references (TOFU, MUSE, open-unlearning) number for number:
Min-k%++'s statistics near a uniform distribution, the Min-k% token count, TOFU's normalised
probability and the model utility built from it."""
import dataclasses

import numpy as np
import pytest
import torch

from unlearn_lab.evaluation.questions import evaluate_model, token_statistics
from unlearn_lab.evaluation.metrics import mink_score, minkpp_score, probability_over_options, table
from unlearn_lab.settings import Eval

from .conftest import qa_record

VOCAB = 49152  # SmolLM2's


def float64_reference(logits, labels, k):
    """Min-k%++ of float32 logits in numpy float64: log-softmax around the maximum, the variance
    centred, floored at 1e-6; returns (logp, mu, sigma unfloored, score)."""
    x = logits.astype(np.float64)
    m = x.max(-1, keepdims=True)
    lsm = x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
    p = np.exp(lsm)
    mu = (p * lsm).sum(-1)
    var = (p * (lsm - mu[:, None]) ** 2).sum(-1)
    logp = lsm[np.arange(len(labels)), labels]
    z = np.sort((logp - mu) / np.sqrt(np.maximum(var, 1e-6)))
    return logp, mu, np.sqrt(var), z[: max(1, int(k * len(z)))].mean()


def near_uniform(scale, positions=12, seed=7):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((positions, VOCAB)) * scale).astype(np.float32), rng.integers(0, VOCAB, positions)


# sigma of log p(v) is about the logits' scale; at 0.003 the variance (~1e-5) is still above the floor
SCALES = (0.1, 0.03, 0.003)


@pytest.mark.parametrize("scale", SCALES)
def test_minkpp_statistics_match_float64_near_a_uniform_distribution(scale):
    logits, labels = near_uniform(scale)
    st = token_statistics(torch.from_numpy(logits), torch.from_numpy(labels))
    logp, mu, sigma, score = float64_reference(logits, labels, 0.4)
    np.testing.assert_allclose(st["logp"].numpy(), logp, rtol=1e-12)
    np.testing.assert_allclose(st["mu"].numpy(), mu, rtol=1e-12)
    np.testing.assert_allclose(st["sigma"].numpy(), sigma, rtol=1e-9)
    np.testing.assert_allclose(sigma, scale, rtol=0.05)  # the test is where it claims to be
    assert minkpp_score(st["logp"].numpy(), st["mu"].numpy(), st["sigma"].numpy(), 0.4) == pytest.approx(score, rel=1e-9)


@pytest.mark.parametrize("scale", SCALES)
def test_the_float32_one_pass_variance_fails_that_test(scale):
    """The former statistics: sqrt(E[lp^2] - mu^2) in float32, sigma floored at 1e-12."""
    logits, labels = near_uniform(scale)
    logp, mu, sigma, score = float64_reference(logits, labels, 0.4)
    lsm = torch.log_softmax(torch.from_numpy(logits), -1)
    mu32 = (lsm.exp() * lsm).sum(-1)
    sigma32 = ((lsm.exp() * lsm.square()).sum(-1) - mu32.square()).clamp(min=0).sqrt().numpy()
    # far beyond the 1e-9 the float64 statistics meet
    assert np.max(np.abs(sigma32 / sigma - 1)) > 1e-4
    if scale == 0.003:  # E[lp^2] - mu^2 rounds to about nothing, or below zero
        z = np.sort((lsm[np.arange(len(labels)), labels].numpy() - mu32.numpy()) / np.maximum(sigma32, 1e-12))
        assert abs(z[: int(0.4 * len(z))].mean() - score) > 10 * abs(score)


def test_minkpp_variance_floor_by_hand():
    # log p(y) - mu = 0.001; sigma^2 floored at 1e-6, so sigma >= 0.001
    assert minkpp_score([-1.0], [-1.001], [0.0]) == pytest.approx(1.0)
    assert minkpp_score([-1.0], [-1.001], [1e-4]) == pytest.approx(1.0)
    assert minkpp_score([-1.0], [-1.001], [0.002]) == pytest.approx(0.5)
    # an exactly uniform distribution: mu = -log V and no spread at all
    st = token_statistics(torch.zeros(3, VOCAB), torch.tensor([0, 5, 9]))
    np.testing.assert_allclose(st["mu"].numpy(), -np.log(VOCAB), rtol=1e-14)
    assert np.all(st["sigma"].numpy() < 1e-12)
    assert minkpp_score(st["logp"].numpy(), st["mu"].numpy(), st["sigma"].numpy()) == pytest.approx(0.0, abs=1e-9)


# max(1, int(0.4 n)) for n = 1..14, by hand: 0.4 1.2 1.6 2.0 2.4 2.8 3.2 3.6 4.0 4.4 4.8 5.2 5.6 rounded
# down, at least 1 (ceil would give 1 1 2 2 2 3 3 4 4 4 5 5 6 6)
COUNTS_AT_04 = [1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5]


def test_min_k_and_min_kpp_average_k_n_rounded_down():
    rng = np.random.default_rng(3)
    for n, count in enumerate(COUNTS_AT_04, start=1):
        logp = -rng.permutation(np.arange(1.0, n + 1))       # -1 .. -n, shuffled
        # the lowest `count` are -n .. -(n - count + 1); their mean differs for every count
        lowest = -(2 * n - count + 1) / 2
        assert mink_score(logp, 0.4) == pytest.approx(lowest), n
        # mu = 0 and sigma = 1 make z_t = log p(y_t)
        assert minkpp_score(logp, np.zeros(n), np.ones(n), 0.4) == pytest.approx(lowest), n


def test_probability_over_options_by_hand():
    # P = exp(-NLL): true e^-0.5 = 0.60653, wrong e^-1 = 0.36788, e^-2 = 0.13534, e^-1.5 = 0.22313;
    # 0.60653 / (0.60653 + 0.36788 + 0.13534 + 0.22313) = 0.60653 / 1.33288 = 0.45505
    assert probability_over_options(0.5, [1.0, 2.0, 1.5]) == pytest.approx(0.45505, abs=1e-5)
    assert probability_over_options(1.0, [1.0, 1.0, 1.0]) == pytest.approx(0.25)  # four equal options
    # options far apart: no 0 / 0, no overflow
    assert probability_over_options(0.0, [800.0]) == 1.0
    assert probability_over_options(800.0, [0.0]) == pytest.approx(0.0, abs=1e-300)


def test_the_normalised_probability_row_takes_the_paraphrase_as_the_true_option():
    # nll = [reference 3.0, paraphrase 0.5, perturbed 1.0 2.0 1.5]: the paraphrase against the
    # perturbed answers, as above; the reference sentence is not an option
    scored = table.Scored(qa_record(0), "Town0", "", np.array([3.0, 0.5, 1.0, 2.0, 1.5]), {}, Eval())
    assert table.BY_NAME["prob_normalized"].compute(scored) == pytest.approx(0.45505, abs=1e-5)
    assert table.BY_NAME["prob_normalized"].aggregate([0.2, 0.6], "world") == pytest.approx(0.4)


UTILITY_SETS = {
    # reciprocals: prob 2, ROUGE-L 4, truth-ratio score 2; prob_normalized unused on retain
    "retain": {"prob": 0.5, "prob_normalized": 0.9, "rouge_l_recall": 0.25, "truth_ratio": 0.5},
    # reciprocals: prob 5, prob_normalized 2.5, ROUGE-L 1, truth-ratio score 2
    "world": {"prob": 0.2, "prob_normalized": 0.4, "rouge_l_recall": 1.0, "truth_ratio": 0.5},
}


def test_model_utility_tofu_and_raw_prob_by_hand():
    compute = table.BY_NAME["model_utility"].compute
    # tofu: 6 / (2 + 4 + 2 + 2.5 + 1 + 2) = 6 / 13.5 = 4 / 9
    tofu = table.ModelContext(dict(UTILITY_SETS), [], None, None, Eval(utility="tofu"))
    assert compute(tofu) == pytest.approx(4 / 9)
    # raw_prob: 6 / (2 + 4 + 2 + 5 + 1 + 2) = 6 / 16
    raw = table.ModelContext(dict(UTILITY_SETS), [], None, None, Eval(utility="raw_prob"))
    assert compute(raw) == pytest.approx(0.375)
    # no settings given: the default, TOFU's form
    assert Eval().utility == "tofu"
    assert compute(table.ModelContext(dict(UTILITY_SETS), [], None, None)) == pytest.approx(4 / 9)


def test_the_evaluation_hands_the_utility_setting_to_model_utility(monkeypatch, tiny_model, tok):
    # An untrained model neither answers right nor prefers the truth: ROUGE-L and the truth-ratio
    # score made constant keep the harmonic mean off 0, where both conventions would agree.
    fixed = {"rouge_l_recall": dataclasses.replace(table.BY_NAME["rouge_l_recall"], compute=lambda s: 0.5),
             "truth_ratio": dataclasses.replace(table.BY_NAME["truth_ratio"], aggregate=lambda v, s: 0.5)}
    monkeypatch.setattr(table, "METRICS", tuple(fixed.get(m.name, m) for m in table.METRICS if not m.optional))
    sets = {"retain": [qa_record(i) for i in range(2)], "world": [qa_record(i) for i in range(2, 4)]}
    utility = {}
    for convention, world_prob in (("tofu", "prob_normalized"), ("raw_prob", "prob")):
        metrics, rows = evaluate_model(tiny_model, tok, sets, Eval(max_new_tokens=2, utility=convention))
        assert metrics["utility_convention"] == convention
        parts = [metrics["retain"][k] for k in ("prob", "rouge_l_recall", "truth_ratio")]
        parts += [metrics["world"][k] for k in (world_prob, "rouge_l_recall", "truth_ratio")]
        assert min(parts) > 0
        assert metrics["model_utility"] == pytest.approx(len(parts) / sum(1 / v for v in parts))
        assert all(0 < r["prob_normalized"] < 1 for r in rows)
        utility[convention] = metrics["model_utility"]
    assert utility["tofu"] != pytest.approx(utility["raw_prob"])
