"""The question/answer record every set shares, and its validation.

Validation runs on every set the library builds or imports, so a malformed record is reported
where it is made, with the set, the record and the field named, instead of surfacing later as a
shape error in training or a silently wrong metric.
"""
from __future__ import annotations

import unicodedata
from typing import Iterable

from ..errors import UserError

SPLITS = ("forget", "retain", "holdout", "world", "replay")
SOURCES = ("synthetic", "world", "import")
N_PERTURBED = 5

# Field name -> required Python type; order is the order checks (and error messages) follow.
SCHEMA: dict[str, type] = {
    "id": str,
    "subject": str,
    "field": str,
    "question": str,
    "answer": str,
    "answer_text": str,
    "paraphrased_answer": str,
    "perturbed_answers": list,
    "split": str,
    "correlated": bool,
    "source": str,
}

# Optional fields, checked when present, so sets made before they existed stay valid.
# derived: the SCHEMA fields the importer made up because the data lacked them (see importing.py);
# wrong_answers: known-wrong answers from the data (CSV rows with is_correct false), which random
# labels prefer; paraphrased_question: TOFU's; origin: "file:line" the record was imported from.
OPTIONAL: dict[str, type] = {
    "derived": list,
    "wrong_answers": list,
    "paraphrased_question": str,
    "origin": str,
}


class DataError(UserError, ValueError):
    """A data file, config or record is malformed.

    A UserError so stages print it without a traceback; a ValueError for callers that catch that.
    """


def make_record(*, rid: str, subject: str, field: str, question: str, answer: str,
                answer_text: str, paraphrased_answer: str, perturbed_answers: list[str], split: str,
                source: str, correlated: bool = False) -> dict:
    return {
        "id": rid,
        "subject": subject,
        "field": field,
        "question": question,
        "answer": answer,
        "answer_text": answer_text,
        "paraphrased_answer": paraphrased_answer,
        "perturbed_answers": list(perturbed_answers),
        "split": split,
        "correlated": bool(correlated),
        "source": source,
    }


def _norm(text: str) -> str:
    """The form texts are compared in (duplicate questions, a wrong answer against the true one):
    Unicode compatibility normalisation (NFKC: full-width letters, ligatures, composed and
    decomposed accents, non-breaking spaces), runs of white space folded to one space, and case
    folded. Case and spacing differences do not make a wrong answer different from the true one."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _type_problem(val, typ: type) -> str | None:
    # bool is a subclass of int, never the other way round, so isinstance is exact here.
    if not isinstance(val, typ):
        return f"must be {typ.__name__}, got {type(val).__name__}"
    if typ is str and not val.strip():
        return "is empty"
    return None


def _optional_errors(rec: dict) -> Iterable[tuple[str, str]]:
    for key, typ in OPTIONAL.items():
        if key not in rec:
            continue
        val = rec[key]
        problem = _type_problem(val, typ)
        if problem:
            yield key, problem
        elif typ is list:
            bad = [v for v in val if not isinstance(v, str) or not v.strip()]
            if bad:
                yield key, f"must hold non-empty strings, got {bad[0]!r}"
            elif key == "derived" and not set(val) <= set(SCHEMA):
                unknown = [v for v in val if v not in SCHEMA]
                yield key, f"names {unknown[0]!r}, which is not a record field"


def _record_errors(rec: dict, name: str) -> Iterable[tuple[str, str]]:
    """Yield (field, problem) pairs for one record; the caller formats the message."""
    for key, typ in SCHEMA.items():
        if key not in rec:
            yield key, "is missing"
            continue
        problem = _type_problem(rec[key], typ)
        if problem:
            yield key, problem
    yield from _optional_errors(rec)
    if any(k not in rec or not isinstance(rec[k], SCHEMA[k]) for k in SCHEMA):
        return
    if rec["split"] not in SPLITS:
        yield "split", f"must be one of {', '.join(SPLITS)}, got {rec['split']!r}"
    elif name in SPLITS and rec["split"] != name:
        yield "split", f"is {rec['split']!r} in the {name!r} set"
    if rec["source"] not in SOURCES:
        yield "source", f"must be one of {', '.join(SOURCES)}, got {rec['source']!r}"
    if rec["correlated"] and rec["split"] != "retain":
        yield "correlated", "may only be true in the retain set"
    pert = rec["perturbed_answers"]
    if len(pert) != N_PERTURBED:
        yield "perturbed_answers", f"must hold exactly {N_PERTURBED} answers, got {len(pert)}"
    bad = [p for p in pert if not isinstance(p, str) or not p.strip()]
    if bad:
        yield "perturbed_answers", f"must be non-empty strings, got {bad[0]!r}"
        return
    seen: set[str] = set()
    truths = {_norm(rec["answer"]), _norm(rec["paraphrased_answer"])}
    for p in pert:
        if _norm(p) in truths:
            yield "perturbed_answers", f"{p!r} equals the true answer"
        if _norm(p) in seen:
            yield "perturbed_answers", f"{p!r} appears twice"
        seen.add(_norm(p))


def validate_records(records, name: str) -> None:
    """Raise DataError naming `name`, the record (index and id) and the field of the first problem.

    When `name` is a split name the records must also carry that split.
    """
    if not isinstance(records, list):
        raise DataError(f"{name}: expected a list of records, got {type(records).__name__}")
    ids: dict[str, int] = {}
    for i, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, dict) else None
        where = f"{name}: record {i} (id={rid!r})"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a dict, got {type(rec).__name__}")
        for field, problem in _record_errors(rec, name):
            raise DataError(f"{where}: field '{field}' {problem}")
        if rid in ids:
            raise DataError(f"{where}: field 'id' duplicates record {ids[rid]}")
        ids[rid] = i


def check_disjoint(sets: dict[str, list[dict]]) -> None:
    """Ids must be unique across all sets, so per-record metrics can be joined without ambiguity."""
    owner: dict[str, str] = {}
    for set_name, records in sets.items():
        for rec in records:
            rid = rec["id"]
            if rid in owner:
                raise DataError(f"{set_name}: record id={rid!r}: field 'id' also used in "
                                f"the {owner[rid]!r} set")
            owner[rid] = set_name


def person(record: dict) -> str:
    """Who a record is about: its `subject` (a person of the synthetic or world benchmark, or the
    person an imported document names), or the record itself where the data names none."""
    return str(record.get("subject") or record["id"])


def wrong_answer_text(record: dict, wrong: str) -> str:
    """The forget record's answer sentence with its fact swapped for a wrong one, so random-label
    training keeps the answer style the model learned; the bare wrong answer when the sentence
    does not contain the fact."""
    sentence = record.get("answer_text") or ""
    return sentence.replace(record["answer"], wrong) if record["answer"] in sentence else wrong
