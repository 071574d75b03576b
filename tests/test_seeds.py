"""Methods across seeds (seeds.py): intervals, Holm's adjustment and the paired test."""
import math

import numpy as np
import pytest
from scipy import stats

from unlearn_lab.studies.seeds import holm, paired_differences, seed_summary, t_interval


def run(method, seed, unlearn_seed, fq, mu, rouge=0.5, lr=1e-4):
    return {"method": method, "lr": lr, "epochs": 5, "knobs": "", "seed": seed, "unlearn_seed": unlearn_seed,
            "forget_quality": fq, "model_utility": mu, "forget_rouge_l": rouge}


def test_t_interval_against_its_closed_form():
    # values 1, 2, 3, 6: mean 3, s^2 = (4 + 1 + 0 + 9) / 3 = 14/3; t_{0.975,3} = 3.182446
    mean, std, lo, hi = t_interval([1, 2, 3, 6])
    half = 3.182446 * math.sqrt(14 / 3) / 2
    assert (mean, std) == (3.0, pytest.approx(math.sqrt(14 / 3)))
    assert (lo, hi) == (pytest.approx(3 - half, rel=1e-6), pytest.approx(3 + half, rel=1e-6))
    assert all(math.isnan(v) for v in t_interval([2.0])[1:])


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 of m=3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_seed_summary_groups_runs_and_averages_forget_quality_on_the_log_scale():
    rows = [run("ga", 42, s, fq, mu) for s, fq, mu in ((0, 1e-1, 0.6), (1, 1e-3, 0.7), (2, 1e-2, 0.8))]
    rows.append(run("npo", 42, 0, 0.5, 0.65))
    ga, npo = seed_summary(rows)
    assert ga["runs"] == 3 and ga["seeds"] == "42/0 42/1 42/2" and npo["runs"] == 1
    assert ga["forget_quality_mean"] == pytest.approx(1e-2)  # geometric mean
    assert ga["forget_quality_std_log10"] == pytest.approx(1.0)
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert ga["forget_quality_lo"] == pytest.approx(10 ** (-2 - half))
    assert ga["model_utility_mean"] == pytest.approx(0.7) and ga["model_utility_std"] == pytest.approx(0.1)
    assert math.isnan(npo["model_utility_lo"])


def test_paired_test_tells_a_planted_difference_from_equal_methods():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0.7, 0.05, size=6)  # shared by all methods at the same seed
    rows = []
    for s, base in enumerate(seed_effect):
        rows.append(run("a", 42, s, 0.1, base + rng.normal(0, 0.002)))
        rows.append(run("b", 42, s, 0.1, base + rng.normal(0, 0.002)))          # same as a
        rows.append(run("c", 42, s, 0.1, base - 0.05 + rng.normal(0, 0.002)))   # 0.05 lower
    pairs = {(p["a"], p["b"]): p for p in paired_differences(rows) if p["metric"] == "model_utility"}
    ab, ac = pairs[("a lr=0.0001", "b lr=0.0001")], pairs[("a lr=0.0001", "c lr=0.0001")]
    assert ab["pairs"] == 6 and not ab["significant"]
    assert ac["significant"] and ac["difference"] == pytest.approx(0.05, abs=0.005) and ac["lo"] > 0
    # an unpaired test would drown the 0.05 in the seed-to-seed spread; pairing removes it
    xa = [r["model_utility"] for r in rows if r["method"] == "a"]
    xc = [r["model_utility"] for r in rows if r["method"] == "c"]
    assert stats.ttest_rel(xa, xc).pvalue == pytest.approx(ac["p"])
    assert stats.ttest_ind(xa, xc).pvalue > ac["p"]


def test_runs_pair_only_on_shared_seeds_and_one_seed_is_no_test():
    rows = [run("a", 42, 0, 0.1, 0.7), run("a", 42, 1, 0.1, 0.7), run("b", 42, 0, 0.1, 0.6), run("b", 7, 1, 0.1, 0.6)]
    (fq,), = [[p for p in paired_differences(rows) if p["metric"] == "forget_quality"]]
    assert fq["pairs"] == 1 and "p" not in fq and "significant" not in fq


def test_durability_views_are_compared_over_seeds_like_the_headline():
    # relearning recovers 0.4 of the forgotten facts after "a" at every seed, 0.1 after "b":
    # the paired difference is 0.3 at each seed up to the planted wobble
    wobble = [0.01, -0.02, 0.015]
    rows = []
    for s, w in enumerate(wobble):
        rows.append({**run("a", 42, s, 0.1, 0.7), "relearn_recovered_over_oracle": 0.4 + w, "robustness_score": 0.7})
        rows.append({**run("b", 42, s, 0.1, 0.7), "relearn_recovered_over_oracle": 0.1, "robustness_score": 0.7})
    a, _ = seed_summary(rows)
    assert a["relearn_recovered_over_oracle_mean"] == pytest.approx(0.4 + sum(wobble) / 3)
    assert "quant_nf4_recovered_mean" not in a  # a view no run wrote is not averaged as zero
    pairs = {p["metric"]: p for p in paired_differences(rows)}
    relearn = pairs["relearn_recovered_over_oracle"]
    diffs = np.array(wobble) + 0.3
    assert relearn["difference"] == pytest.approx(diffs.mean())
    assert relearn["p"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert relearn["significant"] and relearn["lo"] > 0
    assert pairs["robustness_score"]["p"] == 1.0 and not pairs["robustness_score"]["significant"]
    assert pairs["quant_nf4_recovered"]["pairs"] == 0


def test_a_difference_repeated_exactly_at_every_seed_is_not_called_significant_by_a_zero_variance():
    from unlearn_lab.studies.seeds import paired_p

    # the same leak gap of 2/16 at 3 seeds: t = 0.125 / 0 would give p = 0; sign flips give 2/8
    assert paired_p([0.125, 0.125, 0.125]) == 0.25
    assert paired_p([-0.125] * 6) == pytest.approx(2 / 64)
    assert paired_p([0.0, 0.0, 0.0]) == 1.0
    assert paired_p([0.1, 0.3, 0.2]) == pytest.approx(stats.ttest_1samp([0.1, 0.3, 0.2], 0).pvalue)
    rows = []
    for s in range(3):
        rows.append({**run("a", 42, s, 0.1, 0.7), "attack_leak_over_oracle_max": 0.1875})
        rows.append({**run("b", 42, s, 0.1, 0.7), "attack_leak_over_oracle_max": 0.0625})
    (leak,) = [p for p in paired_differences(rows) if p["metric"] == "attack_leak_over_oracle_max"]
    assert leak["p"] == 0.25 and not leak["significant"] and leak["difference"] == pytest.approx(0.125)


def test_differences_equal_up_to_rounding_count_as_equal():
    from unlearn_lab.studies.seeds import paired_p

    d = [9 / 22 - 3 / 22, 0.4090909090909091 - 0.13636363636363635, 6 / 22]
    assert np.ptp(d) > 0  # the last bit differs
    assert paired_p(d) == 0.25


def test_power_of_the_paired_t_test_matches_a_simulation_and_the_published_sample_sizes():
    from unlearn_lab.studies.seeds import paired_power, seeds_needed

    # Monte Carlo: 40,000 studies of 20 pairs with differences ~ N(0.5, 1), tested at 0.05
    rng = np.random.default_rng(0)
    d = rng.normal(0.5, 1.0, size=(40_000, 20))
    simulated = float(np.mean(stats.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05))
    assert paired_power(0.5, 20, 0.05) == pytest.approx(simulated, abs=0.01)
    # Cohen's (1988) one-sample / paired sample sizes for 80% power at a two-sided 0.05 (G*Power
    # gives the same): dz 0.5 -> 34, dz 0.8 -> 15, dz 0.2 -> 199
    for dz, n in ((0.5, 34), (0.8, 15), (0.2, 199)):
        spread = np.array([-1.0, 1.0]) / np.std([-1.0, 1.0], ddof=1)  # sample std 1
        assert seeds_needed(dz + spread, tests=1) == n
    # Holm over 6 pairs plans at 0.05/6: more seeds for the same effect
    assert seeds_needed(0.5 + np.array([-1.0, 1.0]) / np.sqrt(2), tests=6) > 34
    # no variance: the sign-flip test needs 2/2^n < 0.05/6, i.e. 2^n > 240, n = 8
    assert seeds_needed([0.125, 0.125, 0.125], tests=6) == 8
    assert seeds_needed([0.0, 0.0], tests=1) == float("inf")


def test_each_tested_pair_says_how_many_seeds_its_difference_would_take():
    rows = []
    for s, wobble in enumerate([0.05, -0.03, 0.02]):
        rows.append({**run("a", 42, s, 0.1, 0.7), "robustness_score": 0.8 + wobble})
        rows.append({**run("b", 42, s, 0.1, 0.7), "robustness_score": 0.7})
    (score,) = [p for p in paired_differences(rows) if p["metric"] == "robustness_score"]
    diffs = np.array([0.15, 0.07, 0.12])
    from unlearn_lab.studies.seeds import paired_power
    n = score["seeds_needed"]
    dz = diffs.mean() / diffs.std(ddof=1)
    assert paired_power(dz, int(n), 0.05) >= 0.8 > paired_power(dz, int(n) - 1, 0.05)
