"""Every evaluation metric, declared once. One row says how the metric is computed and where it
shows: evaluation, the set summaries, summary.json's headline, the metric bars figure and the
experiment comparison all read this table. A new metric is its function (with its formula and
source in the docstring) and one row here.

Levels:
- "row": one value per question, from what the evaluation computed for it (`Scored`); `aggregate`
  turns a set's values into the set's summary value (None: not summarised). A `batch` metric
  takes the whole set's `Scored` list and the evaluation's models (`env`: `gradient_norms` of
  the evaluated model, `judge_nlls` of the fluency judge, the base model); `sets` limits a metric
  to some sets, `needs_judge` to evaluations given a judge.
- "document": one value per passage of a document (documents benchmark; document_eval.py's
  `ScoredPassage`), summarised per set like a row-level metric; `needs_generation` marks those
  read from the greedy continuation (holdout documents get none).
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
from .likelihood import (TRUTH_RATIOS, answer_probability, perplexity, probability_over_options,
                         truth_ratio_forget_score, truth_ratio_retain_score)
from .memorization import exact_memorization, extraction_strength
from .mia import (auc, gradnorm_score, loss_score, mink_score, minkpp_score, privleak, reference_score,
                  zlib_score)
from .text import bertscore_f1, bleu, repetition_rate, rouge_l_f1, rouge_l_recall, verbmem

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
    order), every row, the oracle's forget rows and metrics (None: no oracle) and the `eval:`
    settings (None: their defaults)."""

    metrics: dict
    rows: list[dict]
    oracle_rows: list[dict] | None
    oracle_metrics: dict | None
    cfg: object = None

    def scores(self, set_name: str, key: str) -> list[float]:
        return [r[key] for r in self.rows if r["set"] == set_name]

    def oracle_scores(self, set_name: str, key: str) -> list[float]:
        return [r[key] for r in self.oracle_rows or [] if r["set"] == set_name]


@dataclass(frozen=True)
class Metric:
    name: str
    level: str
    compute: Callable
    label: str = ""
    aggregate: Callable[[list, str], float] | None = None
    batch: bool = False          # row level: compute takes the whole set's `Scored` list and env
    optional: bool = False       # left out when the caller asks for the cheap metrics only
    sets: tuple[str, ...] | None = None  # row level: only on these sets
    needs_judge: bool = False    # row level: only when the evaluation has a fluency judge
    headline: Where = ()
    plot: Where = ()
    compare: Where = ()
    column: str = ""             # comparison column stem (default: name)
    reason_key: str = ""         # model level: where an Undefined reason goes (default: name)
    interval: bool = False       # a 95% bootstrap interval over questions goes next to it (`<name>_ci95`)
    needs_generation: bool = False  # document level: read from the greedy continuation
    benchmark: str = ""          # set on one benchmark only: its empty bars and columns elsewhere are left out

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
        if "forget" not in ctx.metrics or any(f"mia_{attack}" not in r for r in ctx.rows if r["set"] == "forget"):
            return None
        if "holdout" not in ctx.metrics:
            raise Undefined("no holdout set: membership inference compares forget with holdout answers")
        return auc(ctx.scores("forget", f"mia_{attack}"), ctx.scores("holdout", f"mia_{attack}"))
    return compute


# MUSE reports privacy leakage from the Min-k% attack.
PRIVLEAK_ATTACK = "mink"
# TOFU's model utility: these scores on these sets, combined by a harmonic mean. TOFU's third set,
# real authors, has no counterpart here.
UTILITY_SETS = ("retain", "world")
UTILITY_KEYS = ("prob", "rouge_l_recall", "truth_ratio")


def utility_keys(set_name: str, convention: str) -> tuple[str, ...]:
    """The scores of one utility set: TOFU (`eval.utility: tofu`) takes the probability normalised
    over the answer options on every set but retain; `raw_prob` the plain probability everywhere."""
    if convention == "tofu" and set_name != "retain":
        return tuple("prob_normalized" if k == "prob" else k for k in UTILITY_KEYS)
    return UTILITY_KEYS


def _forget_quality(ctx: ModelContext):
    if "forget" not in ctx.metrics or not ctx.oracle_scores("forget", "truth_ratio"):
        return None
    return forget_quality(ctx.scores("forget", "truth_ratio"), ctx.oracle_scores("forget", "truth_ratio"))


def _forget_quality_sizes(ctx: ModelContext):
    """How many truth ratios of the model and of the oracle the KS test compared: with n questions
    the p-value takes few distinct values, so it reads only with its sizes."""
    if "forget" not in ctx.metrics or not ctx.oracle_scores("forget", "truth_ratio"):
        return None
    return {"model": len(ctx.scores("forget", "truth_ratio")), "oracle": len(ctx.oracle_scores("forget", "truth_ratio"))}


def _mia_reference_auc(ctx: ModelContext):
    """AUC of the reference attack, the oracle's rows (same ids) as the reference."""
    if "forget" not in ctx.metrics or "holdout" not in ctx.metrics or not ctx.oracle_rows:
        return None
    ref = {(r["set"], r["id"]): r["mia_loss"] for r in ctx.oracle_rows if "mia_loss" in r}
    scores = {}
    for set_name in ("forget", "holdout"):
        rows = [r for r in ctx.rows if r["set"] == set_name]
        missing = [r["id"] for r in rows if (set_name, r["id"]) not in ref]
        if missing:
            raise Undefined(f"the oracle has no {set_name} row for id {missing[0]!r}")
        scores[set_name] = [reference_score(r["mia_loss"], ref[(set_name, r["id"])]) for r in rows]
    return auc(scores["forget"], scores["holdout"])


def _privleak_of(attack: str, oracle_auc: float | None = None):
    """PrivLeak with another attack's AUC; `oracle_auc` fixed where the attack defines it (the
    oracle as its own reference scores every answer 0: AUC 0.5)."""
    def compute(ctx: ModelContext):
        ours = ctx.metrics.get(f"mia_{attack}_auc")
        if ours is None or (ctx.oracle_metrics is None and oracle_auc is None):
            return None
        base = oracle_auc if oracle_auc is not None else ctx.oracle_metrics.get(f"mia_{attack}_auc")
        if base is None:
            raise Undefined(f"the oracle has no {attack} membership-inference AUC")
        if base >= 1.0:
            raise Undefined(f"the oracle's {attack} AUC is 1: privacy leakage is undefined")
        return privleak(ours, base)
    return compute


def _geometric_mean(values, set_name: str) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _model_utility(ctx: ModelContext):
    if not all(s in ctx.metrics for s in UTILITY_SETS):
        return None
    convention = "tofu" if ctx.cfg is None else ctx.cfg.utility
    return model_utility(ctx.metrics[s][k] for s in UTILITY_SETS for k in utility_keys(s, convention))


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


def _documents_value(set_name: str, key: str):
    """A documents-benchmark score read from a set's summary: None off that benchmark (no
    forget documents evaluated)."""
    def compute(ctx: ModelContext):
        if "forget_documents" not in ctx.metrics or set_name not in ctx.metrics:
            return None
        return ctx.metrics[set_name][key]
    return compute


def _mia_documents_auc(ctx: ModelContext):
    if "forget_documents" not in ctx.metrics:
        return None
    if "holdout_documents" not in ctx.metrics:
        raise Undefined("no holdout documents: membership inference compares forget with holdout documents")
    return auc(ctx.scores("forget_documents", "mia_mink_passage"), ctx.scores("holdout_documents", "mia_mink_passage"))


DOCUMENT_SETS = ("forget_documents", "retain_documents")
SETS3 = ("forget", "retain", "world")
MIA_ATTACKS = ("loss", "zlib", "mink", "minkpp", "gradnorm")

METRICS: tuple[Metric, ...] = (
    # ROUGE-L recall against the bare fact, so a memorised sentence frame earns nothing by itself.
    Metric("rouge_l_recall", "row", lambda s: rouge_l_recall(s.record["answer"], s.generated), "ROUGE-L",
           aggregate=_mean, headline=SETS3, plot=SETS3, compare=SETS3, column="rouge_l", interval=True),
    Metric("rouge_l_f1", "row", lambda s: rouge_l_f1(s.reference, s.generated), aggregate=_mean),
    Metric("bleu", "row", lambda s: bleu(s.reference, s.generated), aggregate=_mean),
    Metric("bertscore_f1", "row", lambda ss, env: bertscore_f1([s.reference for s in ss], [s.generated for s in ss]),
           aggregate=_mean, batch=True, optional=True),
    Metric("nll", "row", lambda s: float(s.nll[0])),
    Metric("prob", "row", lambda s: float(answer_probability(s.nll[0])), "prob", aggregate=_mean,
           headline=SETS3, plot=("forget", "retain"), interval=True),
    # TOFU's probability on world facts. The paraphrase is the true option: the perturbed answers
    # are its sentence with a wrong fact, as TOFU's world-fact options share the answer's form.
    Metric("prob_normalized", "row", lambda s: probability_over_options(s.nll[1], s.nll[2:]), aggregate=_mean),
    Metric("truth_ratio", "row", lambda s: TRUTH_RATIOS[s.cfg.truth_ratio](s.nll[1], s.nll[2:]), "truth ratio",
           aggregate=_truth_ratio_score, headline=SETS3, plot=("forget",), compare=("forget",), interval=True),
    Metric("exact_memorization", "row", lambda s: exact_memorization(s.stats["correct"]), "exact memo.",
           aggregate=_mean, headline=("forget",), plot=("forget",), interval=True),
    Metric("extraction_strength", "row", lambda s: extraction_strength(s.stats["correct"]), "extraction str.",
           aggregate=_mean, headline=("forget",), interval=True),
    Metric("mia_loss", "row", lambda s: loss_score(s.stats["logp"])),
    Metric("mia_zlib", "row", lambda s: zlib_score(s.stats["logp"], s.reference)),
    Metric("mia_mink", "row", lambda s: mink_score(s.stats["logp"], s.cfg.mink_k)),
    Metric("mia_minkpp", "row", lambda s: minkpp_score(s.stats["logp"], s.stats["mu"], s.stats["sigma"], s.cfg.mink_k)),
    Metric("mia_gradnorm", "row", lambda ss, env: [gradnorm_score(g) for g in env.gradient_norms(ss)], batch=True,
           optional=True, sets=("forget", "holdout")),
    # Fluency: a model that answers gibberish is broken, not forgetful.
    Metric("repetition_rate", "row", lambda s: repetition_rate(s.generated), "repetition", aggregate=_mean,
           headline=("forget", "retain")),
    Metric("fluency_perplexity", "row", lambda ss, env: [float(np.exp(n)) for n in env.judge_nlls(ss)],
           "base-model perplexity", aggregate=_geometric_mean, batch=True, needs_judge=True,
           headline=("forget", "retain")),
    Metric("perplexity", "set", _set_perplexity),
    # Its interval resamples the questions with their oracle rows (intervals.py): how far the
    # p-value moves with another draw of forget questions, not a confidence interval of a p-value.
    Metric("forget_quality", "model", _forget_quality, "forget quality", headline=True, compare=True,
           interval=True),
    Metric("forget_quality_sizes", "model", _forget_quality_sizes, headline=True),
    Metric("model_utility", "model", _model_utility, "model utility", headline=True, plot=True, compare=True,
           interval=True),
    *(Metric(f"mia_{a}_auc", "model", _mia_auc(a), "MIA Min-k%++ AUC" if a == "minkpp" else f"MIA {a} AUC",
             headline=a in ("loss", "minkpp"), plot=a == "minkpp", reason_key="mia", interval=True) for a in MIA_ATTACKS),
    Metric("mia_reference_auc", "model", _mia_reference_auc, headline=True, interval=True),
    Metric("privleak", "model", _privleak, "privleak", headline=True, interval=True),
    Metric("privleak_gradnorm", "model", _privleak_of("gradnorm"), interval=True),
    Metric("privleak_reference", "model", _privleak_of("reference", oracle_auc=0.5), interval=True),
    # Documents benchmark (MUSE, Shi et al. 2024): verbatim and knowledge memorisation of the forget
    # documents (to be low) and of the retain ones (utility: to stay), privacy leakage on passages.
    Metric("verbmem", "document", lambda s: verbmem(s.reference, s.generated), "verbmem", aggregate=_mean,
           sets=DOCUMENT_SETS, needs_generation=True, interval=True),
    Metric("mia_mink_passage", "document", lambda s: mink_score(s.stats["logp"], s.cfg.mink_k)),
    Metric("verbmem_forget", "model", _documents_value("forget_documents", "verbmem"), "verbmem forget",
           headline=True, plot=True, compare=True, interval=True, benchmark="documents"),
    Metric("verbmem_retain", "model", _documents_value("retain_documents", "verbmem"), "verbmem retain",
           headline=True, plot=True, compare=True, interval=True, benchmark="documents"),
    Metric("knowmem_forget", "model", _documents_value("forget", "rouge_l_recall"), "knowmem forget",
           headline=True, plot=True, compare=True, interval=True, benchmark="documents"),
    Metric("knowmem_retain", "model", _documents_value("retain", "rouge_l_recall"), "knowmem retain",
           headline=True, plot=True, compare=True, interval=True, benchmark="documents"),
    Metric("mia_documents_auc", "model", _mia_documents_auc, "MIA Min-k% AUC (documents)", headline=True,
           plot=True, reason_key="mia_documents", interval=True, benchmark="documents"),
    Metric("privleak_documents", "model", _privleak_of("documents"), "privleak (documents)", headline=True,
           compare=True, interval=True, benchmark="documents"),
)

BY_NAME = {m.name: m for m in METRICS}
assert len(BY_NAME) == len(METRICS), "metric names must be unique"


def of_level(level: str) -> list[Metric]:
    return [m for m in METRICS if m.level == level]


def headline(metrics: dict) -> dict:
    """summary.json's headline numbers of one model's metrics (those present), each with its
    95% interval (`<key>_ci95`) where the evaluation computed one."""
    out = {}
    for m in METRICS:
        for s in m.places(m.headline):
            place = metrics if s is None else metrics.get(s, {})
            if place.get(m.name) is not None:
                out[m.key(s)] = place[m.name]
                if place.get(f"{m.name}_ci95") is not None:
                    out[f"{m.key(s)}_ci95"] = place[f"{m.name}_ci95"]
    return out


def bars() -> list[tuple[str | None, str, str]]:
    """(set or None, metric name, label) of each bar of the metric bars figure, in table order."""
    return [(s, m.name, m.label if s is None else f"{s} {m.label}") for m in METRICS for s in m.places(m.plot)]


def comparison_columns() -> list[tuple[str | None, str, str]]:
    """(set or None, metric name, column name) of each comparison column, in table order."""
    return [(s, m.name, m.key(s, m.column or None)) for m in METRICS for s in m.places(m.compare)]


def benchmark_only() -> set[str]:
    """Names of the metrics one benchmark alone has (their bars and columns are left out where
    no model or experiment has a value)."""
    return {m.name for m in METRICS if m.benchmark}
