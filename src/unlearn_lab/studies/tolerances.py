"""How far a re-run's metric may be from the committed one (`make verify`), in one table.

The numbers are docs/reproducibility.md's ("On one machine, and across machines"): on the machine that made the run it is exact, or
1e-6 for sums of floats; on another machine (other CPU kernels) continuous metrics agree to about
1e-3, rank-based ones by one swapped pair, and the `recovered*` fractions least. Keys are the
flattened ones `dvc metrics show` prints (`forget.rouge_l_recall`, list items by index:
`rouge_l_recall_ci95.0`); the first rule whose pattern (fnmatch, lower case) matches decides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

MODES = ("same-machine", "cross-machine")

# A tolerance is ("skip",), ("exact",), ("absrel", x): |a - b| <= max(x, x |a|), ("abs", x), or one
# computed from the run's sizes: ("swaps", k) for AUCs, ("privleak", k) for PrivLeak, ("ks",) for
# forget quality, ("answers", k) for means over questions of a 0/1-ish score, ("answers_rel", k)
# for k/n of the value itself.
RULES: list[tuple[tuple[str, ...], tuple, tuple, str]] = [
    (("*seconds*", "*_s", "*duration*", "*runtime*", "*per_second*"), ("skip",), ("skip",),
     "wall-clock time is not a result"),
    (("versions.*", "*.versions.*"), ("skip",), ("skip",),
     "from versions.yaml, which the stages enforce"),
    (("*forget_quality_sizes*",), ("exact",), ("exact",), "set sizes are counts"),
    (("*recovered*", "*robustness_score*"), ("absrel", 2e-3), ("abs", 0.15),
     "divide by the small target-minus-unlearned gap: 1.9e-4 measured on one machine; across "
     "machines relearning moved 0.00 vs -0.12 of the gap and the robustness score 0.74 vs 0.79"),
    (("*privleak*_ci95*",), ("exact",), ("privleak", 4),
     "bootstrap bound of PrivLeak: as an AUC bound, four swaps"),
    (("*privleak*",), ("exact",), ("privleak", 1),
     "ratio of AUCs: what one swapped pair in the model's AUC and one in the oracle's change"),
    (("*forget_quality*",), ("exact",), ("ks",),
     "KS p-value: one swapped pair moves the statistic by one step, 1/n"),
    (("*_auc_ci95*",), ("exact",), ("swaps", 4),
     "bootstrap bound of an AUC: a resample can hold a swapped pair's members more than once, "
     "so four swaps (an allowance, not measured)"),
    (("*_auc",), ("exact",), ("swaps", 1),
     "rank-based: one swapped forget/holdout pair, 1/(n_forget n_holdout); 0.5195 vs 0.5156 "
     "measured at 16 x 16"),
    (("*leaked",), ("exact",), ("abs", 1), "a count of answers: one answer may change"),
    (("*fluency_perplexity*",), ("absrel", 1e-6), ("answers_rel", 1),
     "perplexity of the greedy answers: one changed answer of n moves it by about 1/n relative "
     "(target holdout 11.62 vs 11.55 across machines)"),
    (("*rouge*", "*bleu*", "*bertscore*", "*exact_memorization*", "*extraction_strength*", "*accuracy*",
      "*leak*", "*repetition_rate*", "*chance*"), ("exact",), ("answers", 1),
     "greedy text or counted: equal on one machine; across machines equal where measured, one "
     "answer (1/n of its set) allowed for a flipped greedy token"),
    (("*truth_ratio*",), ("absrel", 1e-6), ("abs", 5e-3),
     "a ratio of probabilities: a third machine moved the unlearned forget truth ratio by 3.2e-3"),
    (("*",), ("absrel", 1e-6), ("absrel", 1e-3),
     "sums of floats: 6e-8 measured on one machine; probabilities moved in the fourth decimal "
     "across machines"),
]


# Across machines, the unlearned model (and what is measured on it: quantized, relearned, attacked,
# its representations) moves far more than the fine-tuned ones: 5 unlearning epochs carry a
# kernel's rounding into the weights. Measured between a 2-core AVX2 CPU (the run of 03e3114) and
# a 2-core AVX-512 one (d3baa51, same code path), both fp32: target, oracle and base within the
# rules above, the unlearned model's probabilities by up to 2.1% relative (forget 0.5837 vs
# 0.5712), truth ratios by 0.016 (int8 retain 0.563 vs 0.579), ROUGE by 2.5 answers of 40, an
# AUC by 13 swapped pairs of 1600, perplexities by 1.7%. These rules allow a margin above that.
AFTER_UNLEARNING: list[tuple[tuple[str, ...], tuple, str]] = [
    (("*recovered*", "*robustness_score*"), ("abs", 0.15), "as above"),
    (("*privleak*",), ("privleak", 20), "what 20 swapped pairs do to PrivLeak (13 measured in an AUC)"),
    (("*forget_quality*",), ("ks",), "KS p-value: one step of the statistic (unchanged where measured)"),
    (("*_auc*",), ("swaps", 20), "20 swapped forget/holdout pairs (13 measured)"),
    (("*leaked",), ("abs", 3), "a count of answers: three may change"),
    (("*fluency_perplexity*",), ("answers_rel", 8),
     "perplexity, an exp of a mean over tokens: 8/n relative (world 3.04 vs 2.76 of 60 measured, 5.5/n)"),
    (("*rouge*", "*bleu*", "*bertscore*", "*exact_memorization*", "*extraction_strength*", "*accuracy*",
      "*leak*", "*repetition_rate*", "*chance*"), ("answers", 4), "four answers of the set (2.5 measured)"),
    (("*truth_ratio*",), ("abs", 0.03), "0.016 measured"),
    (("*",), ("absrel", 0.05), "5% relative (2.8% measured)"),
]
# Files, and keys of files that hold several models, measured on the unlearned model or after it.
UNLEARNED_FILES = ("unlearn.json", "unlearned.json", "quantize.json", "relearn.json", "attack.json")
UNLEARNED_KEYS = ("unlearned*", "*.unlearned*", "checks.*", "*recovered*", "*robustness*", "attack_*", "quant_*",
                  "relearn_*", "*_over_oracle*")


# What quantize / relearn / attack measure beside the unlearned model: the controls keep the tight rules.
CONTROLS = ("*target*", "oracle*", "*oracle.*")


def after_unlearning(path: str, key: str) -> bool:
    """Whether a metric is measured on the unlearned model or on something made from it."""
    name, low = path.replace("\\", "/").rsplit("/", 1)[-1], key.lower()
    if name in ("unlearn.json", "unlearned.json"):
        return True
    if name in UNLEARNED_FILES:
        return not any(fnmatchcase(low, p) for p in CONTROLS)
    return any(fnmatchcase(low, p) for p in UNLEARNED_KEYS)


def rule_for(key: str, mode: str, path: str = "") -> tuple[tuple, str]:
    """(tolerance, reason) of a flattened key of the metrics file `path` in a mode."""
    if mode not in MODES:
        raise ValueError(f"tolerance mode {mode!r}: expected one of {', '.join(MODES)}")
    low = key.lower()
    first_cross = next(cross for patterns, _, cross, _ in RULES if any(fnmatchcase(low, p) for p in patterns))
    # timings, versions and set sizes are skipped or exact on every model
    if mode == "cross-machine" and first_cross[0] not in ("skip", "exact") and after_unlearning(path, key):
        for patterns, cross, why in AFTER_UNLEARNING:
            if any(fnmatchcase(low, p) for p in patterns):
                return cross, "after unlearning, across machines: " + why
    for patterns, same, cross, why in RULES:
        if any(fnmatchcase(low, p) for p in patterns):
            return (same if mode == "same-machine" else cross), why
    raise AssertionError("the last rule matches every key")


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested dicts and lists to {"a.b.0": scalar}, the keys `dvc metrics show` prints."""
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    out: dict[str, object] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return out


def _split(key: str) -> tuple[str, str]:
    """(the dict a metric sits in, its name): `a.b.rouge_ci95.0` -> (`a.b.`, `rouge_ci95`)."""
    parts = key.split(".")
    while len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    return ("".join(p + "." for p in parts[:-1]), parts[-1])


def _privleak_auc_key(name: str) -> tuple[str, str]:
    """(the PrivLeak point value's name, its model AUC's name) for a PrivLeak key's name;
    plain `privleak` is Min-k's, as MUSE reports."""
    base = name.split("_ci95")[0]
    attack = base[len("privleak_"):] if base.startswith("privleak_") else "mink"
    return base, f"mia_{attack}_auc"


@dataclass
class Sizes:
    """What the rank-based tolerances need from the committed metrics: the set sizes, and each
    PrivLeak value's model AUC (a summary copies PrivLeak without the AUC beside it)."""
    n_forget: int | None = None
    n_holdout: int | None = None
    privleak_aucs: dict = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, files: dict[str, dict[str, object]]) -> "Sizes":
        """Sizes from the first file with top-level `forget.n` and `holdout.n` (an evaluation's)."""
        sizes = cls()
        for flat in files.values():
            if sizes.n_forget is None and isinstance(flat.get("forget.n"), int) \
                    and isinstance(flat.get("holdout.n"), int):
                sizes.n_forget, sizes.n_holdout = flat["forget.n"], flat["holdout.n"]
            for key, value in flat.items():
                parent, name = _split(key)
                if name.startswith("privleak") and "_ci95" not in name:
                    auc = flat.get(parent + _privleak_auc_key(name)[1])
                    if isinstance(auc, (int, float)):
                        sizes.privleak_aucs[(name, value)] = auc
        return sizes

    @property
    def pair(self) -> float | None:
        """What one swapped forget/holdout pair moves an AUC by."""
        return 1.0 / (self.n_forget * self.n_holdout) if self.n_forget and self.n_holdout else None


def _ks_step(p: float, n: int) -> float:
    """How far the two-sample KS p-value `p` (n vs n samples) moves when the statistic moves one
    step of 1/n either way: the p-values of every attainable statistic k/n, from samples built
    to have it, and the largest change next to the one nearest `p`."""
    import numpy as np
    from scipy import stats

    x = np.arange(n, dtype=float)
    table = [1.0] + [float(stats.ks_2samp(x, x + k - 0.5).pvalue) for k in range(1, n + 1)]
    logs = [math.log(max(v, 1e-300)) for v in table]
    k = min(range(n + 1), key=lambda i: abs(logs[i] - math.log(max(p, 1e-300))))
    return max(abs(table[j] - table[k]) for j in (k - 1, k + 1) if 0 <= j <= n)


def _privleak_step(key: str, flat: dict, sizes: Sizes, swaps: int) -> float | None:
    """PrivLeak P = (O - A) / (1 - O) x 100 (A the model's AUC, O the oracle's): a swap in A
    moves it by 100 d / (1 - O), one in O by 100 d (1 - A) / (1 - O)^2; O comes back from P and
    A. (Where O is fixed, the reference attack's 0.5, the second term is slack.)"""
    parent, name = _split(key)
    base, auc_name = _privleak_auc_key(name)
    p = flat.get(parent + base)
    a = flat.get(parent + auc_name, sizes.privleak_aucs.get((base, p)))
    if not isinstance(a, (int, float)) or not isinstance(p, (int, float)) or p == -100:
        return None
    o = (p + 100 * a) / (100 + p)
    if o >= 1:
        return None
    d = swaps * sizes.pair
    return 100 * d / (1 - o) + 100 * d * (1 - a) / (1 - o) ** 2


def tolerance(key: str, committed, flat: dict, sizes: Sizes, mode: str, path: str = "") -> tuple[float | str, str]:
    """("skip" | "exact" | the largest allowed absolute difference, reason) for one metric.
    `flat` is the committed file `path` the key is in (siblings: set sizes, AUCs)."""
    rule, why = rule_for(key, mode, path)
    kind = rule[0]
    if kind in ("skip", "exact"):
        return kind, why
    if isinstance(committed, (bool, str)) or not isinstance(committed, (int, float)) or math.isnan(committed):
        return "exact", why
    if kind == "absrel":
        if isinstance(committed, int):
            return "exact", "a count"
        return max(rule[1], rule[1] * abs(committed)), why
    if kind == "abs":
        return rule[1], why
    if kind in ("answers", "answers_rel"):
        n = flat.get(f"{_split(key)[0]}n")
        n = n if isinstance(n, int) and n > 0 else sizes.n_forget
        if not n:
            return "exact", why + " (no set size found: exact)"
        return rule[1] / n * (abs(committed) if kind == "answers_rel" else 1), why
    if sizes.pair is None:
        return "exact", why + " (no forget/holdout sizes in the committed metrics: exact)"
    if kind == "swaps":
        return rule[1] * sizes.pair, why
    if kind == "privleak":
        step = _privleak_step(key, flat, sizes, rule[1])
        if step is None:
            return max(1e-3, 1e-3 * abs(committed)), why + " (its AUC not beside it: 1e-3)"
        return step, why
    if kind == "ks":
        base = _split(key)[0]
        n = flat.get(f"{base}forget_quality_sizes.model", sizes.n_forget)
        m = flat.get(f"{base}forget_quality_sizes.oracle", n)
        # unequal sizes: the smaller set's step, the coarser one (the looser tolerance)
        return _ks_step(float(committed), min(n, m)), why
    raise AssertionError(f"unknown tolerance kind {kind!r}")


def compare_value(committed, rerun, tol) -> tuple[float | None, bool]:
    """(absolute difference where both are numbers, within tolerance?)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (committed, rerun))
    if not numbers:
        return None, committed == rerun
    if math.isnan(committed) or math.isnan(rerun):
        return None, math.isnan(committed) and math.isnan(rerun)
    diff = abs(float(rerun) - float(committed))
    if tol == "exact":
        return diff, committed == rerun
    return diff, diff <= tol * (1 + 1e-9)
