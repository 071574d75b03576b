"""Membership inference on forget (trained on) against holdout (never seen) answers, and MUSE's
privacy leakage. Every score is oriented so that higher means "more likely a member"."""
from __future__ import annotations

import zlib

import numpy as np


def auc(member_scores, nonmember_scores) -> float:
    """ROC AUC = P(score(member) > score(non-member)) + 0.5 P(tie) = U / (n_members n_nonmembers),
    U the Mann-Whitney statistic of the members: the sum of their ranks among all scores (ties
    sharing the mean rank, scipy's `rankdata`) minus n_members (n_members + 1) / 2. It equals
    scikit-learn's `roc_auc_score` with members labelled 1 at a fraction of its cost, which the
    bootstrap intervals (a thousand AUCs per model) need. 1.0: perfectly separable; 0.5: no signal."""
    from scipy.stats import rankdata

    m = np.asarray(member_scores, dtype=float)
    n = np.asarray(nonmember_scores, dtype=float)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("auc needs at least one member and one non-member score")
    ranks = rankdata(np.concatenate([m, n]))
    u = ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2.0
    return float(u / (len(m) * len(n)))


def loss_score(token_logp) -> float:
    """LOSS attack (Yeom et al. 2018): score = mean_t log p(y_t), minus the answer's mean NLL."""
    return float(np.mean(token_logp))


def zlib_score(token_logp, text: str) -> float:
    """zlib attack (Carlini et al. 2021): score = -(mean NLL) / zlib entropy, the entropy being
    the length in bytes of the zlib-compressed UTF-8 text; it discounts answers that are simply
    easy to predict."""
    return float(np.mean(token_logp)) / len(zlib.compress(text.encode("utf-8")))


# Min-k%++'s floor on the variance of log p(v), as open-unlearning's MinKPlusPlusAttack clamps it.
MINKPP_MIN_VARIANCE = 1e-6


def _lowest_mean(values, k: float) -> float:
    # k n rounded down, as MUSE and open-unlearning count; at least one token for short answers.
    v = np.sort(np.asarray(values, dtype=float))
    return float(v[: max(1, int(k * len(v)))].mean())


def mink_score(token_logp, k: float = 0.4) -> float:
    """Min-k% Prob (Shi et al. 2024): the mean of the lowest max(1, int(k n)) of the answer's n
    token log-probabilities."""
    return _lowest_mean(token_logp, k)


def minkpp_score(token_logp, token_mu, token_sigma, k: float = 0.4) -> float:
    """Min-k%++ (Zhang et al. 2024): per token z_t = (log p(y_t) - mu_t) / sqrt(max(sigma_t^2, 1e-6)),
    mu_t and sigma_t the mean and standard deviation of log p(v) under v ~ p(.|context); the
    score is the mean of the lowest max(1, int(k n)) of the n values z_t. The variance floor
    1e-6 (sigma >= 1e-3) is open-unlearning's (MinKPlusPlusAttack): a near-deterministic
    next-token distribution would otherwise divide by almost nothing."""
    sigma = np.sqrt(np.maximum(np.square(np.asarray(token_sigma, float)), MINKPP_MIN_VARIANCE))
    z = (np.asarray(token_logp, float) - np.asarray(token_mu, float)) / sigma
    return _lowest_mean(z, k)


def reference_score(logp_model: float, logp_reference: float) -> float:
    """Reference-model attack (Carlini et al. 2021; the calibrated likelihood ratio of
    Mireshghallah et al. 2022): score = mean_t log p_model(y_t) - mean_t log p_ref(y_t), with the
    oracle as the reference, a model that never saw the forget set: what the model knows beyond
    what any model of that data would."""
    return float(logp_model) - float(logp_reference)


def gradnorm_score(gradient_norm: float) -> float:
    """Gradient-norm attack (Wang et al. 2024, arXiv 2402.17012; open-unlearning's GradNorm): score =
    -||grad_theta NLL(y|x)||_2, the norm over every weight of the answer's mean token NLL
    gradient; a trained-on example sits nearer a minimum, so its gradient is smaller."""
    return -float(gradient_norm)


def privleak(auc_model: float, auc_oracle: float) -> float:
    """PrivLeak (MUSE, Shi et al. 2024) = ((1 - AUC) - (1 - AUC_oracle)) / (1 - AUC_oracle) x 100,
    AUC being ours (members score higher). 0: leaks like a model that never saw the forget set;
    near -100: the forget set is plainly recognisable (under-unlearned); positive: over-unlearned."""
    base = 1.0 - auc_oracle
    if base <= 0:
        raise ValueError("privleak is undefined when the oracle's AUC is 1")
    return float(((1.0 - auc_model) - base) / base * 100.0)
