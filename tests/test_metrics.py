import math

import numpy as np
import pytest
from scipy import stats

from unlearn_lab.evaluation.metrics import (
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


def test_bertscore_gives_the_same_bits_whatever_the_hash_seed():
    """bert-score orders its embedding batches by a Python set; with padded batches two runs of the
    same evaluation differed in the last bit. One process per hash seed, compared exactly."""
    import json
    import subprocess
    import sys

    code = ("import json; from unlearn_lab.evaluation.metrics.text import bertscore_f1; "
            "refs = ['Town%d lies in the valley of the %s river' % (i, 'long ' * (i % 4)) for i in range(40)]; "
            "gens = ['In Town%d, by the river' % i if i % 3 else 'Paris' for i in range(40)]; "
            "print(json.dumps(bertscore_f1(refs, gens)))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ,
                                                                          "PYTHONHASHSEED": seed},
                                      capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            for seed in ("1", "2", "3")]
    assert runs[0] == runs[1] == runs[2]
    assert len(set(runs[0])) > 5 and all(0 < f <= 1.0001 for f in runs[0])
