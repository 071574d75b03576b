"""Prefix attack on the documents benchmark: does a forgotten passage come back when the model is
prompted with other parts of its document than the `eval.prefix_tokens` it was scored on?

Three prompts per forget document: a shorter prefix (half the tokens), a longer one (twice the
tokens) and a prefix of the same length from the middle of the document; each continuation is
scored against the document's next `eval.continuation_tokens` tokens with verbmem (ROUGE-L F1),
for the unlearned model, the oracle (the floor: what a model that never read the document
continues from the same prompt) and, with `attack.target`, the target (the ceiling).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation.documents import greedy_continuations
from ..evaluation.intervals import bootstrap_intervals
from ..evaluation.metrics.text import verbmem

VARIANTS = ("short", "long", "middle")


@dataclass(frozen=True)
class PrefixProbe:
    variant: str
    document: str
    prefix: list[int]
    continuation: list[int]


def prefix_probes(tok, documents: list[dict], prefix_tokens: int, continuation_tokens: int) -> list[PrefixProbe]:
    """Each document's short, long and middle prompts, where the document is long enough to leave
    at least one token to continue (a variant that does not fit is left out for that document)."""
    probes = []
    for doc in documents:
        ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
        middle = max(0, (len(ids) - prefix_tokens) // 2)
        starts = {"short": (0, max(1, prefix_tokens // 2)), "long": (0, 2 * prefix_tokens),
                  "middle": (middle, middle + prefix_tokens)}
        for variant in VARIANTS:
            start, end = starts[variant]
            continuation = ids[end : end + continuation_tokens]
            if continuation and end > start:
                probes.append(PrefixProbe(variant, doc["id"], ids[start:end], continuation))
    return probes


def run_prefix_probes(model, tok, probes: list[PrefixProbe], batch_size: int, label: str) -> list[dict]:
    """One row per probe: the model's greedy continuation and its verbmem."""
    generated = greedy_continuations(model, tok, [p.prefix for p in probes], [len(p.continuation) for p in probes],
                                     batch_size, desc=f"{label}: prefix attack")
    rows = []
    for p, g in zip(probes, generated):
        truth = tok.decode(p.continuation, skip_special_tokens=True)
        rows.append({"model": label, "attack": "prefix", "set": p.variant, "id": p.document,
                     "prefix": tok.decode(p.prefix), "reference": truth, "generated": g, "verbmem": verbmem(truth, g)})
    return rows


def prefix_results(rows: dict[str, list[dict]], resamples: int = 1000, seed: int = 0) -> dict:
    """Per variant and model the mean verbmem with a 95% bootstrap interval over documents, and
    the unlearned model's excess over the oracle's (paired by document, with its interval)."""
    out: dict = {}
    for variant in VARIANTS:
        block: dict = {}
        for model, model_rows in rows.items():
            mine = [r for r in model_rows if r["set"] == variant]
            if not mine:
                continue
            block[model] = _mean_with_interval(mine, lambda sample: np.mean([r["verbmem"] for r in sample]),
                                               resamples, seed)
        if "unlearned" in block and "oracle" in block:
            oracle = {r["id"]: r["verbmem"] for r in rows["oracle"] if r["set"] == variant}
            paired = [{**r, "excess": r["verbmem"] - oracle[r["id"]]} for r in rows["unlearned"] if r["set"] == variant]
            over = _mean_with_interval(paired, lambda sample: np.mean([r["excess"] for r in sample]), resamples, seed)
            block["over_oracle"], block["over_oracle_ci95"] = over["verbmem"], over.get("verbmem_ci95")
        if block:
            block["documents"] = len([r for r in next(iter(rows.values())) if r["set"] == variant])
            out[variant] = block
    return out


def _mean_with_interval(rows: list[dict], mean, resamples: int, seed: int) -> dict:
    value = {"verbmem": float(mean(rows))}
    if resamples and len(rows) > 1:
        rows = [{**r, "set": "all"} for r in rows]
        interval = bootstrap_intervals(rows, lambda s, _: {"v": float(mean(s))}, [("v",)], resamples=resamples,
                                       seed=seed)[("v",)]
        if interval is not None:
            value["verbmem_ci95"] = interval
    return value


def headline(result: dict) -> dict:
    """The most any prefix variant brings back: the unlearned model's highest verbmem, and its
    highest excess over the oracle."""
    blocks = result.get("prefix_attack") or {}
    if not blocks:
        return {}
    out = {"prefix_attack_verbmem_max": max(b["unlearned"]["verbmem"] for b in blocks.values())}
    with_oracle = [v for v in blocks if "over_oracle" in blocks[v]]
    if with_oracle:
        out["prefix_attack_over_oracle_max"] = max(blocks[v]["over_oracle"] for v in with_oracle)
    return out
