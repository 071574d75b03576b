"""Methods across seeds: mean, spread and 95% interval of each configuration's runs, and which
differences between configurations hold up when the runs are paired by seed.

A configuration is everything of a comparison row but its seeds (`seed`: data and fine-tunes;
`unlearn_seed`: unlearning's own). Forget quality is a p-value spanning orders of magnitude, so
it is averaged, spread and compared on the log10 scale (its mean is a geometric mean).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

CONFIG = ("method", "lr", "epochs", "knobs")
SEEDS = ("seed", "unlearn_seed")
# metric column -> its scale for averaging and testing: the headline trade-off, then whether the
# forgetting lasts (the robustness stages' headlines and the summary's verdict), so that "method A
# forgets more durably than B" is a paired test over seeds like any other difference
ACROSS = {"forget_quality": "log10", "model_utility": "linear", "forget_rouge_l": "linear",
          "quant_nf4_recovered": "linear", "relearn_recovered_over_oracle": "linear",
          "attack_leak_over_oracle_max": "linear", "robustness_score": "linear"}
ALPHA = 0.05


def _scale(values, scale: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.log10(np.maximum(v, 1e-300)) if scale == "log10" else v


def _unscale(value: float, scale: str) -> float:
    return float(10 ** value) if scale == "log10" else float(value)


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Runs of each configuration, in order of first appearance."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in CONFIG), []).append(r)
    return out


def label(config: tuple) -> str:
    method, lr = config[:2]
    return f"{method} lr={lr:g}" if isinstance(lr, (int, float)) else str(method)


def t_interval(values) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) with the 95% Student-t interval of the mean,
    mean -/+ t_{0.975, n-1} s / sqrt(n); the interval is NaN with fewer than two values."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, len(v) - 1)) * std / math.sqrt(len(v))
    return mean, std, mean - half, mean + half


def seed_summary(rows: list[dict]) -> list[dict]:
    """One row per configuration: its number of runs, the seeds behind them and, per metric of
    ACROSS, `<m>_mean`, `<m>_std`, `<m>_lo`, `<m>_hi` (log10 metrics: geometric mean and the
    back-transformed interval, the std on the log10 scale as `<m>_std_log10`)."""
    out = []
    for config, runs in groups(rows).items():
        row = dict(zip(CONFIG, config))
        row["runs"] = len(runs)
        row["seeds"] = " ".join(f"{r.get('seed')}/{r.get('unlearn_seed')}" for r in runs)
        for metric, scale in ACROSS.items():
            values = [r[metric] for r in runs if r.get(metric) is not None]
            if not values:
                continue
            mean, std, lo, hi = t_interval(_scale(values, scale))
            suffix = "_std_log10" if scale == "log10" else "_std"
            row.update({f"{metric}_mean": _unscale(mean, scale), f"{metric}{suffix}": std,
                        f"{metric}_lo": _unscale(lo, scale) if math.isfinite(lo) else math.nan,
                        f"{metric}_hi": _unscale(hi, scale) if math.isfinite(hi) else math.nan})
        out.append(row)
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979): the i-th smallest of m p-values becomes
    max_{j<=i} min(1, (m - j + 1) p_(j)); it keeps the family-wise error at the level."""
    order = np.argsort(pvalues)
    adjusted = np.empty(len(pvalues))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _constant(d: np.ndarray) -> bool:
    # differences of fractions such as 9/22 - 3/22 can differ in the last bit from seed to seed;
    # t would then divide by rounding noise
    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())))


def paired_p(differences) -> float:
    """Two-sided p-value of paired differences: the paired t-test (scipy `ttest_rel` on the pairs is
    `ttest_1samp` on their differences). Where the differences do not vary, t is 0/0 or x/0 and says
    nothing; metrics on a coarse grid (leaks in sixteenths) often repeat exactly across a few seeds.
    Then the exact sign-flip test: all 2^n sign patterns of n equal non-zero differences, of which
    the two with every sign alike reach the observed |mean|, give p = 2 / 2^n (0.25 for 3 seeds);
    all-zero differences give 1."""
    d = np.asarray(differences, dtype=float)
    if _constant(d):
        return 1.0 if d[0] == 0 else min(1.0, 2.0 / 2 ** len(d))
    return float(stats.ttest_1samp(d, 0.0).pvalue)


POWER = 0.8


def paired_power(dz: float, n: int, level: float) -> float:
    """Power of the two-sided paired t-test at `level` with n pairs when the true mean difference
    is dz standard deviations of the differences: under that alternative t follows a noncentral t
    with n - 1 degrees of freedom and noncentrality dz sqrt(n) (Cohen 1988, ch. 2)."""
    df, nc = n - 1, dz * math.sqrt(n)
    crit = stats.t.ppf(1 - level / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(differences, tests: int, power: float = POWER, most: int = 100_000) -> float:
    """Paired seeds for a `power` chance that the difference seen here, at the spread seen here,
    reaches significance after Holm's correction over `tests` pairs (planned at Holm's strictest
    step, alpha / tests). Differences that do not vary are judged by the sign-flip test
    (`paired_p`): the smallest n with 2 / 2^n below that level. inf when the mean difference is 0
    (nothing to detect) or more than `most` seeds would be needed. A plan, not a finding: the
    spread of 3 seeds is itself uncertain."""
    d = np.asarray(differences, dtype=float)
    level = ALPHA / max(1, tests)
    mean = float(d.mean())
    if mean == 0:
        return math.inf
    if _constant(d):
        return float(math.floor(math.log2(2 / level)) + 1)
    dz = abs(mean) / float(d.std(ddof=1))
    low, high = 2, 2  # power grows with n: double until it is reached, then bisect
    while paired_power(dz, high, level) < power:
        low, high = high, high * 2
        if high > most:
            return math.inf
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if paired_power(dz, mid, level) >= power else (mid, high)
    return float(high if paired_power(dz, low, level) < power else low)


def paired_differences(rows: list[dict]) -> list[dict]:
    """For every pair of configurations and every metric of ACROSS: the runs matched by their
    seeds, the mean difference (first minus second, on the metric's scale) with its 95% t
    interval, the paired test's p-value (`paired_p`), Holm's adjustment over all pairs
    of that metric, `significant` (adjusted p < 0.05) and `seeds_needed` (`seeds_needed`: how many
    paired seeds a difference this size would take). Pairs with fewer than two matched runs get no
    test: one seed cannot tell a method from noise."""
    by_config = groups(rows)
    out = []
    for metric, scale in ACROSS.items():
        tests = []
        for a, b in itertools.combinations(by_config, 2):
            seeds_a = {tuple(r.get(k) for k in SEEDS): r.get(metric) for r in by_config[a]}
            seeds_b = {tuple(r.get(k) for k in SEEDS): r.get(metric) for r in by_config[b]}
            shared = [s for s in seeds_a if s in seeds_b and seeds_a[s] is not None and seeds_b[s] is not None]
            row = {"metric": metric, "scale": scale, "a": label(a), "b": label(b), "pairs": len(shared)}
            if len(shared) >= 2:
                xa, xb = _scale([seeds_a[s] for s in shared], scale), _scale([seeds_b[s] for s in shared], scale)
                mean, _, lo, hi = t_interval(xa - xb)
                p = paired_p(xa - xb)
                row.update({"difference": mean, "lo": lo, "hi": hi, "p": p, "_differences": xa - xb})
                tests.append(row)
            out.append(row)
        for row, adjusted in zip(tests, holm([r["p"] for r in tests]) if tests else []):
            row["p_holm"] = adjusted
            row["significant"] = adjusted < ALPHA
            row["seeds_needed"] = seeds_needed(row.pop("_differences"), len(tests))
    return out
