"""95% bootstrap intervals over questions for one run's metrics.

A run's headline numbers are means (or AUCs) over a few dozen questions; their interval says how
far another draw of questions could move them. The unit resampled is the question: each set
(forget, retain, holdout, world) is resampled with replacement on its own (a stratified
bootstrap, so every resample keeps each set's size), and every metric of the resample is
recomputed from its rows, model-level metrics included. Where the oracle's rows come along, the
oracle's row of the same question goes with each resampled question, so comparisons with the
oracle (privacy leakage, the reference attack) are paired.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def bootstrap_intervals(rows: list[dict], recompute: Callable[[list[dict], list[dict] | None], dict],
                        keys: list[tuple], oracle_rows: list[dict] | None = None, resamples: int = 1000,
                        seed: int = 0) -> dict[tuple, list[float] | None]:
    """Percentile intervals (scipy.stats.bootstrap) of the values `recompute(rows, oracle_rows)`
    returns at each key path of `keys` (e.g. ("forget", "prob") or ("privleak",)), over resamples
    of the questions of each set. A key missing or not finite in any resample gets None."""
    by_set: dict[str, list[dict]] = {}
    for r in rows:
        by_set.setdefault(r["set"], []).append(r)
    # A set of one question is the same in every resample (and scipy needs two to resample).
    drawn = [name for name, members in by_set.items() if len(members) > 1]
    fixed = [r for name, members in by_set.items() if len(members) == 1 for r in members]
    oracle_of = {(r["set"], r["id"]): r for r in oracle_rows or []}

    def statistic(*picks):
        sample = fixed + [by_set[name][int(i)] for name, pick in zip(drawn, picks) for i in pick]
        paired = [oracle_of[(r["set"], r["id"])] for r in sample if (r["set"], r["id"]) in oracle_of]
        values = recompute(sample, paired if oracle_rows else None)
        return np.array([_number(values, key) for key in keys])

    if not drawn:
        low = high = statistic()
    else:
        with warnings.catch_warnings():
            # A metric constant across resamples is "degenerate" to scipy; its percentile interval
            # is then the single value, which is what it should be.
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(tuple(np.arange(len(by_set[name])) for name in drawn), statistic,
                                     n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
                                     vectorized=False, paired=False, rng=np.random.default_rng(seed))
        low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
    return {key: [float(lo), float(hi)] if np.isfinite(lo) and np.isfinite(hi) else None
            for key, lo, hi in zip(keys, low, high)}


def _number(values: dict, key: tuple) -> float:
    for part in key:
        if not isinstance(values, dict) or part not in values:
            return float("nan")
        values = values[part]
    return float(values) if isinstance(values, (int, float)) else float("nan")
