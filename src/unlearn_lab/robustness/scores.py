"""Robustness scores: recovery after an attack, and representation drift between models.

Each function's docstring gives its formula and source."""
from __future__ import annotations

import numpy as np

# Below this target-unlearned gap there is nothing to recover: the method did not forget.
MIN_GAP = 1e-6


def knowledge_recovered(after: float, unlearned: float, target: float) -> float | None:
    """Fraction of the forgotten knowledge an attack brings back.

    recovered = (score_after - score_unlearned) / (score_target - score_unlearned), for any forget
    score (ROUGE-L recall, answer probability, truth-ratio score; the ratio is the same whichever
    way the score points). 0: the attack restored nothing; 1: back to the target; < 0: it forgot
    further. None when
    target and unlearned score alike (nothing was forgotten, so no fraction is defined). The form
    is Zhang et al. 2024 (arXiv 2410.16454)'s comparison of quantized and full-precision recall,
    normalised by what unlearning removed.
    """
    gap = target - unlearned
    if abs(gap) < MIN_GAP:
        return None
    return float((after - unlearned) / gap)


def recovered_over_oracle(relearned: float, oracle_relearned: float, target: float, oracle: float) -> float | None:
    """Knowledge of the forget facts after an attack beyond what the same attack gives a model
    that never saw them, as a fraction of what the target knows beyond that model.

    recovered_over_oracle = (score_relearned_unlearned - score_relearned_oracle)
                            / (score_target - score_oracle),
    the oracle's two scores before and after the same attack (data, steps, lr, seed), all on the
    same scored forget facts. An attack's data can teach facts by itself (the answer format,
    shared answers, neighbours of the scored facts); the attacked oracle is what that alone
    gives, so an unlearned model that behaves as the oracle under attack scores 0 whatever the
    attack teaches, and 1 means it ends as far above the attacked oracle as the target stands
    above the oracle. Unlike `knowledge_recovered` it also counts what unlearning never removed:
    the question is how much of the fact can be extracted, not how much came back. < 0: the
    unlearned model ends below the attacked oracle. As `knowledge_recovered`, the ratio does not
    depend on which way the score points. None when target and oracle score alike (the target
    does not know the facts better than a model that never saw them: nothing to extract).
    """
    gap = target - oracle
    if abs(gap) < MIN_GAP:
        return None
    return float((relearned - oracle_relearned) / gap)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of cos(a_i, b_i) = a_i . b_i / (|a_i| |b_i|) (rows: prompts, cols: hidden)."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def mean_drift_norm(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of |a_i - b_i|_2: how far a layer's pooled state moved (e.g. unlearned vs
    target), in the units of the residual stream."""
    return float(np.mean(np.linalg.norm(a - b, axis=-1)))


def mean_logit_drift_norm(a: np.ndarray, b: np.ndarray, head: np.ndarray) -> float:
    """Mean over rows of |W_head (a_i - b_i)|_2, with W_head the (vocab x hidden) output matrix:
    the change read directly into vocabulary space (a logit-lens view without the final norm),
    which ignores drift in directions the head cannot see."""
    return float(np.mean(np.linalg.norm((a - b) @ head.T, axis=-1)))
