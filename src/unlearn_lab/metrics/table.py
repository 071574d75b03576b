"""Every evaluation metric, declared once. One row says how the metric is computed and where it
shows: evaluation, the set summaries, summary.json's headline, the metric bars figure and the
experiment comparison all read this table. A new metric is its function (with its formula and
source in the docstring) and one row here.

Levels:
- "row": one value per question, from what the evaluation computed for it (`Scored`); `aggregate`
  turns a set's values into the set's summary value (None: not summarised).
- "set": one value per set, from the set's rows.
- "model": one value per model, from the set summaries and rows of all sets (`ModelContext`);
  it returns None where its inputs are absent (e.g. no oracle), or raises `Undefined` with the
  reason, written as `<reason_key>_reason`.

`headline`, `plot` and `compare` name the sets whose value goes to summary.json
(`<set>_<name>`), to the metric bars figure and to the comparison CSV (`<set>_<column>`); for a
model-level metric they are True or False.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from .aggregate import forget_quality, model_utility
from .likelihood import (TRUTH_RATIOS, answer_probability, perplexity, truth_ratio_forget_score,
                         truth_ratio_retain_score)
from .memorization import exact_memorization, extraction_strength
from .mia import auc, loss_score, mink_score, minkpp_score, privleak, zlib_score
from .text import bertscore_f1, bleu, rouge_l_f1, rouge_l_recall

Where = Union[tuple[str, ...], bool]


class Undefined(Exception):
    """A model-level metric whose inputs are there but whose value is not defined; the message
    says why."""


@dataclass(frozen=True)
class Scored:
    """What the evaluation computed for one question: the record, the reference sentence and the
    greedy generation, the length-normalised NLLs of [reference, paraphrased, *perturbed] answers,
    the reference's per-token statistics (`logp`, `mu`, `sigma`, `correct`) and the resolved
    `eval:` settings."""

    record: dict
    reference: str
    generated: str
    nll: np.ndarray
    stats: dict
    cfg: object


@dataclass
class ModelContext:
    """What a model-level metric reads: the set summaries computed so far (filled in table
    order), every row, and the oracle's forget rows and metrics (None: no oracle)."""

    metrics: dict
    rows: list[dict]
    oracle_rows: list[dict] | None
    oracle_metrics: dict | None

    def scores(self, set_name: str, key: str) -> list[float]:
        return [r[key] for r in self.rows if r["set"] == set_name]


@dataclass(frozen=True)
class Metric:
    name: str
    level: str
    compute: Callable
    label: str = ""
    aggregate: Callable[[list, str], float] | None = None
    batch: bool = False          # row level: compute takes the whole set's `Scored` list
    optional: bool = False       # left out when the caller asks for the cheap metrics only
    headline: Where = ()
    plot: Where = ()
    compare: Where = ()
    column: str = ""             # comparison column stem (default: name)
    reason_key: str = ""         # model level: where an Undefined reason goes (default: name)

    def places(self, where: Where) -> list[str | None]:
        """The sets a `headline` / `plot` / `compare` entry names; [None] for a model-level True."""
        if isinstance(where, bool):
            return [None] if where else []
        return list(where)

    def key(self, set_name: str | None, stem: str | None = None) -> str:
        stem = stem or self.name
        return stem if set_name is None else f"{set_name}_{stem}"


def _mean(values, set_name: str) -> float:
    return float(np.mean(values))


def _truth_ratio_score(values, set_name: str) -> float:
    """The forget form of the truth-ratio score on forget facts, the retain form elsewhere (TOFU)."""
    return (truth_ratio_forget_score if set_name == "forget" else truth_ratio_retain_score)(values)


def _set_perplexity(rows: list[dict], set_name: str) -> float:
    # exp(mean token NLL over the set): each row's mean NLL weighted by its token count
    return perplexity(np.repeat([r["nll"] for r in rows], [r["n_tokens"] for r in rows]))


def _mia_auc(attack: str):
    def compute(ctx: ModelContext):
        if "forget" not in ctx.metrics:
            return None
        if "holdout" not in ctx.metrics:
            raise Undefined("no holdout set: membership inference compares forget with holdout answers")
        return auc(ctx.scores("forget", f"mia_{attack}"), ctx.scores("holdout", f"mia_{attack}"))
    return compute


# MUSE reports privacy leakage from the Min-k% attack.
PRIVLEAK_ATTACK = "mink"
# TOFU's model utility: these scores on these sets, combined by a harmonic mean.
UTILITY_SETS = ("retain", "world")
UTILITY_KEYS = ("prob", "rouge_l_recall", "truth_ratio")


def _forget_quality(ctx: ModelContext):
    if "forget" not in ctx.metrics or not ctx.oracle_rows:
        return None
    return forget_quality(ctx.scores("forget", "truth_ratio"), [r["truth_ratio"] for r in ctx.oracle_rows])


def _model_utility(ctx: ModelContext):
    if not all(s in ctx.metrics for s in UTILITY_SETS):
        return None
    return model_utility(ctx.metrics[s][k] for s in UTILITY_SETS for k in UTILITY_KEYS)


def _privleak(ctx: ModelContext):
    ours = ctx.metrics.get(f"mia_{PRIVLEAK_ATTACK}_auc")
    if ours is None or ctx.oracle_metrics is None:
        return None
    oracle_auc = ctx.oracle_metrics.get(f"mia_{PRIVLEAK_ATTACK}_auc")
    if oracle_auc is None:
        raise Undefined("the oracle has no membership-inference AUC")
    if oracle_auc >= 1.0:
        raise Undefined("the oracle's AUC is 1: privacy leakage is undefined")
    return privleak(ours, oracle_auc)


SETS3 = ("forget", "retain", "world")
MIA_ATTACKS = ("loss", "zlib", "mink", "minkpp")

METRICS: tuple[Metric, ...] = (
    # ROUGE-L recall against the bare fact, so a memorised sentence frame earns nothing by itself.
    Metric("rouge_l_recall", "row", lambda s: rouge_l_recall(s.record["answer"], s.generated), "ROUGE-L",
           aggregate=_mean, headline=SETS3, plot=SETS3, compare=SETS3, column="rouge_l"),
    Metric("rouge_l_f1", "row", lambda s: rouge_l_f1(s.reference, s.generated), aggregate=_mean),
    Metric("bleu", "row", lambda s: bleu(s.reference, s.generated), aggregate=_mean),
    Metric("bertscore_f1", "row", lambda ss: bertscore_f1([s.reference for s in ss], [s.generated for s in ss]),
           aggregate=_mean, batch=True, optional=True),
    Metric("nll", "row", lambda s: float(s.nll[0])),
    Metric("prob", "row", lambda s: float(answer_probability(s.nll[0])), "prob", aggregate=_mean,
           headline=SETS3, plot=("forget", "retain")),
    Metric("truth_ratio", "row", lambda s: TRUTH_RATIOS[s.cfg.truth_ratio](s.nll[1], s.nll[2:]), "truth ratio",
           aggregate=_truth_ratio_score, headline=SETS3, plot=("forget",), compare=("forget",)),
    Metric("exact_memorization", "row", lambda s: exact_memorization(s.stats["correct"]), "exact memo.",
           aggregate=_mean, headline=("forget",), plot=("forget",)),
    Metric("extraction_strength", "row", lambda s: extraction_strength(s.stats["correct"]), aggregate=_mean),
    Metric("mia_loss", "row", lambda s: loss_score(s.stats["logp"])),
    Metric("mia_zlib", "row", lambda s: zlib_score(s.stats["logp"], s.reference)),
    Metric("mia_mink", "row", lambda s: mink_score(s.stats["logp"], s.cfg.mink_k)),
    Metric("mia_minkpp", "row", lambda s: minkpp_score(s.stats["logp"], s.stats["mu"], s.stats["sigma"], s.cfg.mink_k)),
    Metric("perplexity", "set", _set_perplexity),
    Metric("forget_quality", "model", _forget_quality, headline=True, compare=True),
    Metric("model_utility", "model", _model_utility, "model utility", headline=True, plot=True, compare=True),
    *(Metric(f"mia_{a}_auc", "model", _mia_auc(a), "MIA Min-k%++ AUC" if a == "minkpp" else f"MIA {a} AUC",
             headline=a in ("loss", "minkpp"), plot=a == "minkpp", reason_key="mia") for a in MIA_ATTACKS),
    Metric("privleak", "model", _privleak, headline=True),
)

BY_NAME = {m.name: m for m in METRICS}
assert len(BY_NAME) == len(METRICS), "metric names must be unique"


def of_level(level: str) -> list[Metric]:
    return [m for m in METRICS if m.level == level]


def headline(metrics: dict) -> dict:
    """summary.json's headline numbers of one model's metrics (those present)."""
    out = {}
    for m in METRICS:
        for s in m.places(m.headline):
            value = metrics.get(m.name) if s is None else metrics.get(s, {}).get(m.name)
            if value is not None:
                out[m.key(s)] = value
    return out


def bars() -> list[tuple[str | None, str, str]]:
    """(set or None, metric name, label) of each bar of the metric bars figure, in table order."""
    return [(s, m.name, m.label if s is None else f"{s} {m.label}") for m in METRICS for s in m.places(m.plot)]


def comparison_columns() -> list[tuple[str | None, str, str]]:
    """(set or None, metric name, column name) of each comparison column, in table order."""
    return [(s, m.name, m.key(s, m.column or None)) for m in METRICS for s in m.places(m.compare)]
