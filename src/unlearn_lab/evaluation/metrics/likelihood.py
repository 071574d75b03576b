"""Metrics on answer likelihoods: length-normalised probability, its share among the answer
options, and the truth ratio."""
from __future__ import annotations

import numpy as np


def answer_probability(mean_nll: float | np.ndarray) -> float | np.ndarray:
    """prob(y|x) = exp(-mean_t NLL(y_t)), the length-normalised answer probability (TOFU)."""
    return np.exp(-np.asarray(mean_nll, dtype=float))


def probability_over_options(nll_true: float, nll_wrong) -> float:
    """P(true) / (P(true) + sum_i P(wrong_i)), P = exp(-length-normalised NLL): the true answer's
    share of the probability the model gives the answer options.

    TOFU's probability on real authors and world facts (Maini et al. 2024; open-unlearning's
    `probability_w_options`), where the true answer is written like the wrong ones. Computed as
    1 / (1 + sum_i exp(NLL_true - NLL_wrong_i)) so that improbable options do not give 0 / 0.
    """
    gaps = float(nll_true) - np.asarray(nll_wrong, dtype=float)
    return float(np.exp(-np.logaddexp.reduce(np.append(gaps, 0.0))))


def truth_ratio(nll_paraphrased: float, nll_perturbed) -> float:
    """R = exp(NLL(paraphrased) - mean_i NLL(perturbed_i)), NLLs length-normalised.

    This is TOFU's ratio (Maini et al. 2024, eq. 1): the geometric mean of the perturbed
    (wrong) answers' normalised probabilities over the paraphrased (right) answer's. R < 1
    means the model prefers the truth; R near 1 means it cannot tell.
    """
    return float(np.exp(float(nll_paraphrased) - float(np.mean(nll_perturbed))))


def truth_ratio_mean_prob(nll_paraphrased: float, nll_perturbed) -> float:
    """R = mean_i prob(perturbed_i) / prob(paraphrased), prob = exp(-length-normalised NLL): the
    arithmetic mean of the wrong answers' probabilities over the right one's (the "mean wrong
    over correct" convention of some seeds). By the AM-GM inequality it is >= TOFU's ratio."""
    wrong = np.exp(-np.asarray(nll_perturbed, dtype=float))
    return float(wrong.mean() / np.exp(-float(nll_paraphrased)))


TRUTH_RATIOS = {"tofu": truth_ratio, "mean_prob": truth_ratio_mean_prob}


def perplexity(token_nlls) -> float:
    """exp(sum of token NLLs / number of tokens) over every answer token of a set (corpus-level)."""
    v = np.asarray(token_nlls, dtype=float)
    if v.size == 0:
        raise ValueError("perplexity needs at least one token")
    return float(np.exp(v.mean()))


def truth_ratio_forget_score(ratios) -> float:
    """mean_i min(R_i, 1/R_i): 1 when right and wrong answers are equally likely (TOFU, forget)."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def truth_ratio_retain_score(ratios) -> float:
    """mean_i max(0, 1 - R_i): near 1 when the truth is strongly preferred (TOFU, retain/world)."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.maximum(0.0, 1.0 - r)))
