"""Shared pieces of the robustness stages (quantize, relearn): re-scoring a model variant on
forget and retain facts (and on the documents benchmark the forget documents' verbatim
memorisation), full-precision baselines from the evaluate stage's rows, and the "knowledge
recovered" figure."""
from __future__ import annotations

from ..evaluation.documents import DOCUMENT_SET, evaluate_documents
from ..errors import UserError
from ..evaluation.questions import evaluate_set, summarize_set
from ..settings import Eval
from .scores import knowledge_recovered

SCORES = ("rouge_l_recall", "prob", "truth_ratio")
# The recovered fraction does not care which way a score points: it is 1 when the score is back
# at the target's, whether that is higher (ROUGE-L, probability) or lower (forget truth-ratio score).
# On the documents benchmark the forget ROUGE-L is knowmem, and verbmem is re-scored too.
RECOVERY_SCORES = {"rouge_l_recall": "recovered", "prob": "recovered_prob", "truth_ratio": "recovered_truth_ratio",
                   "documents_verbmem": "recovered_verbmem"}


def score_sets(model, tok, sets: dict[str, list[dict]], eval_cfg: Eval, label: str,
               documents: dict[str, list[dict]] | None = None) -> tuple[dict, list[dict]]:
    """Flat scores `<set>_<score>` of `model` on each set (BERTScore left out), and the rows;
    with `documents` (split -> documents) also `<split>_documents_verbmem`."""
    scores, all_rows = {}, []
    for name, records in sets.items():
        rows, summary = evaluate_set(model, tok, records, eval_cfg, name, bertscore=False)
        for key in SCORES:
            scores[f"{name}_{key}"] = summary[key]
        all_rows.extend({**row, "variant": label} for row in rows)
    for split, docs in (documents or {}).items():
        name = DOCUMENT_SET.format(split)
        rows = evaluate_documents(model, tok, docs, eval_cfg, split)
        scores[f"{name}_verbmem"] = summarize_set(rows, name)["verbmem"]
        all_rows.extend({**row, "variant": label} for row in rows)
    return scores, all_rows


def baseline_scores(rows: list[dict], sets: dict[str, list[dict]], source: str,
                    documents: dict[str, list[dict]] | None = None) -> dict:
    """The same flat scores for a full-precision model from its evaluate-stage rows, restricted
    to exactly the records in `sets` and the documents in `documents` (a subset needs its own means)."""
    out = {}
    for name, records in sets.items():
        by_id = {r["id"]: r for r in rows if r["set"] == name}
        missing = [r["id"] for r in records if r["id"] not in by_id]
        if missing:
            raise UserError(f"{source}: no {name} row for record id {missing[0]!r}; re-run its evaluate stage")
        summary = summarize_set([by_id[r["id"]] for r in records], name)
        for key in SCORES:
            out[f"{name}_{key}"] = summary[key]
    for split, docs in (documents or {}).items():
        name = DOCUMENT_SET.format(split)
        wanted = {d["id"] for d in docs}
        chosen = [r for r in rows if r["set"] == name and r["document"] in wanted]
        missing = wanted - {r["document"] for r in chosen}
        if missing:
            raise UserError(f"{source}: no {name} row for document id {sorted(missing)[0]!r}; re-run its evaluate stage")
        out[f"{name}_verbmem"] = summarize_set(chosen, name)["verbmem"]
    return out


def add_recovery(scores: dict, unlearned: dict, target: dict, set_name: str = "forget") -> dict:
    """Add `recovered*` keys (see `knowledge_recovered`) for the forget scores, or a reason."""
    out = dict(scores)
    for key, name in RECOVERY_SCORES.items():
        full = f"{set_name}_{key}"
        if full not in scores:
            continue
        value = knowledge_recovered(scores[full], unlearned[full], target[full])
        if value is None:
            out[f"{name}_reason"] = f"target and unlearned {full} are equal: nothing was forgotten"
        else:
            out[name] = value
    return out


def recovered_headline(key: str, block: dict | None, source: str, field: str = "recovered") -> dict:
    """`{key: block[field]}`, or `{key_reason: why}` when it is not defined or was not run:
    the headline a robustness stage writes under `headline` in its metrics file (the summary
    and the experiment comparison collect every stage's block)."""
    if block is None:
        return {f"{key}_reason": f"{source} was not run"}
    if field in block:
        return {key: block[field]}
    return {f"{key}_reason": block.get(f"{field}_reason", "not computed")}
