"""Bootstrap intervals over questions (intervals.py) and their place in the metrics."""
import numpy as np
import pytest

from unlearn_lab.evaluation.questions import add_intervals, metrics_from_rows
from unlearn_lab.evaluation.intervals import bootstrap_intervals
from unlearn_lab.settings import Eval


def rows_of(set_name, values, key="x"):
    return [{"set": set_name, "id": f"{set_name}{i}", key: float(v)} for i, v in enumerate(values)]


def set_means(sample, oracle_sample):
    out = {}
    for r in sample:
        out.setdefault(r["set"], []).append(r["x"])
    return {name: {"mean": float(np.mean(v)), "n": len(v)} for name, v in out.items()}


def test_bernoulli_mean_matches_the_normal_closed_form():
    """For a mean of n Bernoulli draws the bootstrap distribution is Binomial(n, p_hat)/n, so the
    percentile interval is p_hat -/+ 1.96 sqrt(p_hat (1 - p_hat) / n) up to O(1/n) and resampling error."""
    n, hits = 400, 120
    rows = rows_of("forget", [1] * hits + [0] * (n - hits))
    (lo, hi), = bootstrap_intervals(rows, set_means, [("forget", "mean")], resamples=4000).values()
    p = hits / n
    half = 1.959964 * np.sqrt(p * (1 - p) / n)
    assert lo == pytest.approx(p - half, abs=0.006) and hi == pytest.approx(p + half, abs=0.006)


def test_each_set_is_resampled_on_its_own_and_keeps_its_size():
    rows = rows_of("forget", [0, 1, 2]) + rows_of("holdout", np.arange(11))
    got = bootstrap_intervals(rows, set_means, [("forget", "n"), ("holdout", "n"), ("forget", "mean")], resamples=300)
    assert got[("forget", "n")] == [3.0, 3.0] and got[("holdout", "n")] == [11.0, 11.0]
    lo, hi = got[("forget", "mean")]
    assert 0.0 <= lo < 1.0 < hi <= 2.0


def test_the_oracle_row_of_each_resampled_question_comes_along():
    """The model scores every question exactly 1 above the oracle: paired, the difference of
    means is 1 in every resample; had the oracle been resampled on its own it would spread."""
    values = np.random.default_rng(0).normal(size=30)
    model, oracle = rows_of("forget", values + 1.0), rows_of("forget", values)

    def difference(sample, oracle_sample):
        return {"d": np.mean([r["x"] for r in sample]) - np.mean([r["x"] for r in oracle_sample])}

    got = bootstrap_intervals(model, difference, [("d",)], oracle_rows=oracle, resamples=200)
    assert got[("d",)] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_a_set_of_one_question_and_an_undefined_metric():
    rows = rows_of("forget", [0.25]) + rows_of("holdout", [1, 2, 3, 4])

    def stats(sample, oracle_sample):
        out = set_means(sample, oracle_sample)
        xs = [r["x"] for r in sample if r["set"] == "holdout"]
        if len(set(xs)) > 1:  # undefined when the resample drew one question four times
            out["spread"] = float(np.std(xs))
        return out

    got = bootstrap_intervals(rows, stats, [("forget", "mean"), ("spread",), ("missing",)], resamples=500)
    assert got[("forget", "mean")] == [0.25, 0.25]
    assert got[("spread",)] is None and got[("missing",)] is None


def scored_rows(set_name, n, shift, rng):
    """Rows with every field the metrics table aggregates, members scoring `shift` higher."""
    out = []
    for i in range(n):
        lp = float(rng.normal(-1.0 + shift, 0.5))
        out.append({"set": set_name, "id": f"{set_name}{i}", "correlated": i % 2 == 0, "nll": -lp, "n_tokens": 5,
                    "rouge_l_recall": float(rng.uniform()), "prob": float(np.exp(lp)), "prob_normalized": float(rng.uniform(0.2, 0.9)),
                    "truth_ratio": float(rng.uniform(0.2, 1.5)), "exact_memorization": float(rng.uniform()),
                    "extraction_strength": float(rng.uniform()), **{f"mia_{a}": lp + float(rng.normal(0, 0.1))
                                                                  for a in ("loss", "zlib", "mink", "minkpp")}})
    return out


def test_intervals_go_next_to_the_marked_metrics_and_hold_the_value():
    rng = np.random.default_rng(1)
    rows = scored_rows("forget", 20, 0.8, rng) + scored_rows("holdout", 20, 0.0, rng) + \
        scored_rows("retain", 24, 0.5, rng) + scored_rows("world", 10, 0.0, rng)
    oracle = [{**r, **{f"mia_{a}": r[f"mia_{a}"] - (0.8 if r["set"] == "forget" else 0.0)
                       for a in ("loss", "zlib", "mink", "minkpp")}} for r in rows]
    oracle_metrics = metrics_from_rows(oracle)
    metrics = metrics_from_rows(rows, oracle, oracle_metrics)
    add_intervals(metrics, rows, oracle, oracle_metrics, Eval(bootstrap=300))
    for key in ("model_utility", "mia_loss_auc", "mia_reference_auc", "privleak", "privleak_reference"):
        lo, hi = metrics[f"{key}_ci95"]
        assert lo <= metrics[key] <= hi, key
    for set_name in ("forget", "retain", "retain_correlated", "world"):
        for key in ("rouge_l_recall", "prob", "truth_ratio", "exact_memorization"):
            lo, hi = metrics[set_name][f"{key}_ci95"]
            assert lo < metrics[set_name][key] < hi, (set_name, key)
    assert "perplexity_ci95" not in metrics["forget"]
    # the oracle's truth ratios are the model's: every resample is two equal samples, KS p = 1
    assert metrics["forget_quality"] == 1.0 and metrics["forget_quality_ci95"] == [1.0, 1.0]
    assert metrics["forget_quality_sizes"] == {"model": 20, "oracle": 20}


def test_forget_quality_interval_resamples_questions_with_their_oracle_rows():
    """Every truth ratio of the model above every one of the oracle's: each resample of the 20
    questions (with their oracle rows) keeps the samples apart, D = 1 at n = m = 20, so its p-value
    is the full data's (scipy's exact test); half the questions moved a little: an interval of some
    width around the value."""
    from scipy import stats

    rng = np.random.default_rng(3)
    rows = scored_rows("forget", 20, 0.0, rng) + scored_rows("holdout", 20, 0.0, rng)
    apart = [{**r, "truth_ratio": r["truth_ratio"] + 10.0} if r["set"] == "forget" else r for r in rows]
    oracle_metrics = metrics_from_rows(rows)
    metrics = metrics_from_rows(apart, rows, oracle_metrics)
    add_intervals(metrics, apart, rows, oracle_metrics, Eval(bootstrap=200))
    separated = stats.ks_2samp(np.arange(20.0), np.arange(20.0) + 100).pvalue
    assert metrics["forget_quality"] == separated
    lo, hi = metrics["forget_quality_ci95"]
    assert separated <= lo <= hi < 1e-3  # fewer distinct values in a resample: a larger p, still tiny
    half = [{**r, "truth_ratio": r["truth_ratio"] + (0.7 if int(r["id"][6:]) % 2 else 0.0)}
            if r["set"] == "forget" else r for r in rows]
    metrics = metrics_from_rows(half, rows, oracle_metrics)
    add_intervals(metrics, half, rows, oracle_metrics, Eval(bootstrap=200))
    lo, hi = metrics["forget_quality_ci95"]
    assert lo <= metrics["forget_quality"] <= hi and hi - lo > 0.01
