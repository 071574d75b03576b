"""Finish imported drafts into records: the length limit, the checks across sets, and the fields
the data did not give, derived and listed in each record's `derived` field.

Derivations (no model is involved, so nothing is invented beyond what the data holds):
- id: `<set>.<n>` (n counts the set's records from 0001); subject: the id; field: "imported";
- answer_text and paraphrased_answer: the answer itself (the truth ratio then compares the
  answer with the wrong ones);
- perturbed_answers (5 wrong answers): the data's own wrong answers first (CSV rows with
  is_correct false), then answers of other records of the same field, then of any field,
  sampled with a generator seeded by (seed, record id), so a record's draw does not depend on
  file order or on the other records' draws.
"""
from __future__ import annotations

import logging
import random

from .records import N_PERTURBED, SCHEMA, DataError, _norm, _record_errors, make_record

log = logging.getLogger(__name__)

SETS = ("forget", "retain", "holdout", "world")
TEXT_FIELDS = ("question", "answer", "answer_text", "paraphrased_answer", "paraphrased_question")
LIST_FIELDS = ("perturbed_answers", "wrong_answers")


def limit_length(drafts: dict[str, list[dict]], max_chars: int, on_long: str) -> int:
    """Cut (or, with on_long reject, refuse) texts over max_chars; return how many records were cut."""
    cut_records = 0
    for name in SETS:
        for d in drafts[name]:
            cut = False
            for field in TEXT_FIELDS + LIST_FIELDS:
                if field not in d:
                    continue
                values = d[field] if field in LIST_FIELDS else [d[field]]
                for i, text in enumerate(values):
                    if len(text) <= max_chars:
                        continue
                    if on_long == "reject":
                        item = f" item {i + 1}" if field in LIST_FIELDS else ""
                        raise DataError(f"{d['origin']}: field '{field}'{item} is {len(text)} "
                                        f"characters, over data.import.max_chars={max_chars} "
                                        "(data.import.on_long: truncate would cut it)")
                    values[i] = text[:max_chars].rstrip()
                    cut = True
                if field not in LIST_FIELDS:
                    d[field] = values[0]
            cut_records += cut
    return cut_records


def check_across_sets(drafts: dict[str, list[dict]]) -> None:
    """Ids unique, and every question in one set once: a question both forgotten and retained
    (or trained on and held out) makes the scores meaningless."""
    ids: dict[str, str] = {}
    questions: dict[str, tuple[str, str]] = {}
    for name in SETS:
        for d in drafts[name]:
            if d["id"] in ids:
                raise DataError(f"{d['origin']}: field 'id' {d['id']!r} is also the id of the "
                                f"record at {ids[d['id']]}")
            ids[d["id"]] = d["origin"]
            key = _norm(d["question"])
            if key in questions:
                where, other = questions[key]
                if other != name:
                    raise DataError(f"{d['origin']}: field 'question' {d['question']!r} is also in "
                                    f"the {other} set at {where}; a question belongs to one set")
                raise DataError(f"{d['origin']}: field 'question' {d['question']!r} repeats the "
                                f"question at {where}")
            questions[key] = (d["origin"], name)


def _answer_pools(drafts: dict[str, list[dict]]) -> tuple[dict[str, list[str]], list[str]]:
    """Distinct answers per field and over all fields, in first-seen order (never set order)."""
    by_field: dict[str, dict[str, str]] = {}
    every: dict[str, str] = {}
    for name in SETS:
        for d in drafts[name]:
            by_field.setdefault(d["field"], {}).setdefault(_norm(d["answer"]), d["answer"])
            every.setdefault(_norm(d["answer"]), d["answer"])
    return {f: list(v.values()) for f, v in by_field.items()}, list(every.values())


def _perturbed(d: dict, pools: dict[str, list[str]], every: list[str], seed: int) -> list[str]:
    chosen = list(d.get("perturbed_answers", []))[:N_PERTURBED]
    taken = {_norm(d["answer"]), _norm(d["paraphrased_answer"])} | {_norm(p) for p in chosen}
    rng = random.Random(f"unlearn_lab.import.perturbed:{seed}:{d['id']}")
    for source in (d.get("wrong_answers", []), pools[d["field"]], every):
        free = [a for a in source if _norm(a) not in taken]
        need = N_PERTURBED - len(chosen)
        if need <= 0:
            break
        # The data's own wrong answers are taken in file order; pool answers are sampled.
        picks = free[:need] if source is d.get("wrong_answers") else rng.sample(free, min(need, len(free)))
        for p in picks:
            chosen.append(p)
            taken.add(_norm(p))
    if len(chosen) < N_PERTURBED:
        raise DataError(f"{d['origin']}: field 'perturbed_answers': found {len(chosen)} wrong "
                        f"answer(s), need {N_PERTURBED}; give perturbed answers in the data, or "
                        f"import more records (their answers are the pool)")
    return chosen


def finish_records(drafts: dict[str, list[dict]], seed: int, max_chars: int,
                   on_long: str) -> dict[str, list[dict]]:
    cut = limit_length(drafts, max_chars, on_long)
    if cut:
        log.warning(f"data.import: cut {cut} record(s) to max_chars={max_chars} characters "
                    "(data.import.on_long: truncate)")
    for name in SETS:
        for n, d in enumerate(drafts[name], 1):
            made = d["derived"] = []
            for field, value in (("id", f"{name}.{n:04d}"), ("field", "imported")):
                if field not in d:
                    d[field] = value
                    made.append(field)
            for field, value in (("subject", d["id"]), ("answer_text", d["answer"]),
                                 ("paraphrased_answer", d["answer"])):
                if field not in d:
                    d[field] = value
                    made.append(field)
    check_across_sets(drafts)
    pools, every = _answer_pools(drafts)
    sets: dict[str, list[dict]] = {}
    for name in SETS:
        sets[name] = []
        for d in drafts[name]:
            made = d["derived"]
            if len(d.get("perturbed_answers", [])) < N_PERTURBED:
                made.append("perturbed_answers")
            rec = make_record(
                rid=d["id"], subject=d["subject"], field=d["field"], question=d["question"],
                answer=d["answer"], answer_text=d["answer_text"],
                paraphrased_answer=d["paraphrased_answer"],
                perturbed_answers=_perturbed(d, pools, every, seed), split=name, source="import",
                correlated=d.get("correlated", False))
            rec["origin"] = d["origin"]
            if made:
                rec["derived"] = [f for f in SCHEMA if f in made]
            for key in ("wrong_answers", "paraphrased_question"):
                if key in d:
                    rec[key] = d[key]
            for field, problem in _record_errors(rec, name):
                raise DataError(f"{d['origin']} (id={rec['id']!r}): field '{field}' {problem}")
            sets[name].append(rec)
    return sets
