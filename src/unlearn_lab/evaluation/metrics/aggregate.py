"""Metrics that combine others: forget quality and model utility."""
from __future__ import annotations

import numpy as np
from scipy import stats


def forget_quality(ratios_model, ratios_oracle) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test between the forget-set truth ratios of
    the model and of the oracle (a model never trained on the forget set), TOFU (Maini et al. 2024).
    High means indistinguishable from never having learned; it says nothing about utility.
    """
    a = np.asarray(ratios_model, dtype=float)
    b = np.asarray(ratios_oracle, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("forget_quality needs truth ratios of both the model and the oracle")
    return float(stats.ks_2samp(a, b).pvalue)


def model_utility(values) -> float:
    """MU = n / sum_i (1 / v_i), the harmonic mean of the n utility components; 0 if any is 0.

    TOFU's model utility (Maini et al. 2024) takes 9 components: {probability, ROUGE-L recall,
    truth-ratio score} on the retain set, real authors and world facts, the probability
    normalised over the answer options on the last two. Which components go in here is
    metrics/table.py's choice (6: no real-authors set).
    """
    v = np.asarray(list(values), dtype=float)
    if len(v) == 0:
        raise ValueError("model_utility needs at least one component")
    if np.any(v <= 0):
        return 0.0
    return float(stats.hmean(v))
