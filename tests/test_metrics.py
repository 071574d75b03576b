import math

import numpy as np
import pytest
from scipy import stats

from unlearn_lab.metrics import (
    answer_probability,
    forget_quality,
    model_utility,
    rouge_l_f1,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_forget_score,
    truth_ratio_retain_score,
)


def test_rouge_l_recall_hand_computed():
    # LCS of "the cat sat on the mat" and "the cat on a mat" is "the cat on mat": 4 of 6 words.
    assert rouge_l_recall("the cat sat on the mat", "the cat on a mat") == pytest.approx(4 / 6)
    assert rouge_l_f1("the cat sat on the mat", "the cat on a mat") == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert rouge_l_recall("Paris", "The capital of France is Paris.") == 1.0
    assert rouge_l_recall("Paris", "Lyon") == 0.0


def test_answer_probability_is_exp_of_minus_mean_nll():
    assert answer_probability(0.0) == 1.0
    assert answer_probability(math.log(4)) == pytest.approx(0.25)


def test_truth_ratio_hand_computed():
    # R = exp(NLL_para - mean NLL_pert) = exp(1 - 2.5)
    assert truth_ratio(1.0, [2.0, 3.0]) == pytest.approx(math.exp(-1.5))
    # equal likelihoods: cannot tell right from wrong
    assert truth_ratio(2.0, [2.0] * 5) == pytest.approx(1.0)


def test_truth_ratio_aggregates():
    assert truth_ratio_forget_score([0.5, 2.0]) == pytest.approx(0.5)
    assert truth_ratio_forget_score([1.0]) == pytest.approx(1.0)
    assert truth_ratio_retain_score([0.5, 2.0]) == pytest.approx(0.25)
    assert truth_ratio_retain_score([0.1]) == pytest.approx(0.9)


def test_forget_quality_against_exact_ks():
    # Fully separated samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert forget_quality([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(0.5, 1, size=30)
    assert forget_quality(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue)
    with pytest.raises(ValueError):
        forget_quality([], [1.0])


def test_model_utility_is_harmonic_mean():
    assert model_utility([1.0, 0.5]) == pytest.approx(2 / (1 / 1.0 + 1 / 0.5))
    assert model_utility([0.2, 0.4, 0.8]) == pytest.approx(3 / (5 + 2.5 + 1.25))
    assert model_utility([0.9, 0.0, 0.8]) == 0.0
