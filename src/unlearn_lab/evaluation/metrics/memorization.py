"""Teacher-forced memorisation of an answer: how many tokens, and how long a suffix, the model
reproduces by greedy prediction."""
from __future__ import annotations

import numpy as np


def exact_memorization(correct) -> float:
    """EM (Tirumala et al. 2022) = (1/|y|) sum_t 1[argmax_v p(v|x, y_<t) = y_t]: the fraction of
    answer tokens the model predicts exactly, given the true prefix."""
    c = np.asarray(correct, dtype=bool)
    if c.size == 0:
        raise ValueError("exact_memorization needs at least one answer token")
    return float(c.mean())


def extraction_strength(correct) -> float:
    """ES (Carlini et al. 2021, as in open-unlearning) = 1 - k*/|y|, k* the smallest k such that
    every token from k on is predicted exactly given the true prefix: the share of the answer
    that greedy decoding recovers once given the rest. 1: the whole answer; 0: not even the
    last token."""
    c = np.asarray(correct, dtype=bool)
    if c.size == 0:
        raise ValueError("extraction_strength needs at least one answer token")
    wrong = np.flatnonzero(~c)
    k_star = 0 if wrong.size == 0 else int(wrong[-1]) + 1
    return float(1.0 - k_star / c.size)
