"""Finish imported drafts into records: the length limit, the checks across sets, and the fields
the data did not give, derived and listed in each record's `derived` field.

Derivations (no model is involved, so nothing is invented beyond what the data holds):
- id: `<set>.<n>` (n counts the set's records from 0001); subject: the id;
- field: the kind of the answer (year, number, date, person, place, or `imported` for none of
  them), inferred by the rules in kinds.py, so wrong answers are drawn from answers of the same
  kind;
- answer_text and paraphrased_answer: the answer itself (the truth ratio then compares the
  answer with the wrong ones);
- perturbed_answers (5 wrong answers): the data's own wrong answers first (CSV rows with
  is_correct false), then answers of other records of the same field, then, only when the field
  has too few, of any field. Pool answers are sampled with a generator seeded by (seed, record
  id) from the distinct answers (compared after normalisation, records._norm) in a canonical
  order (sorted by their normalised text), so a record's draw depends on the seed, its id, its
  own texts and the set of answers in the data: not on the order of rows in the files, nor on
  the other records' draws. (Ids derived from the row position do follow the order; give ids
  in the data to keep draws when rows move.)

Every pass is linear in the number of records (sorting the pools aside): a draw costs a few
index computations, never a copy of the pool.
"""
from __future__ import annotations

import logging
import random

from .kinds import OTHER, infer_kind, settle_kinds
from .records import N_PERTURBED, SCHEMA, DataError, _norm, _record_errors, make_record

log = logging.getLogger(__name__)

SETS = ("forget", "retain", "holdout", "world")
TEXT_FIELDS = ("question", "answer", "answer_text", "paraphrased_answer", "paraphrased_question")
LIST_FIELDS = ("perturbed_answers", "wrong_answers")


def _at(d: dict) -> str:
    """Where a draft is located in messages ("file:line")."""
    return d.get("at") or d["origin"]


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
                        raise DataError(f"{_at(d)}: field '{field}'{item} is {len(text)} "
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
    (or trained on and held out) makes the scores meaningless. Questions are compared after
    normalisation (records._norm: NFKC, white space and case folded)."""
    ids: dict[str, str] = {}
    questions: dict[str, tuple[str, str]] = {}
    for name in SETS:
        for d in drafts[name]:
            if d["id"] in ids:
                raise DataError(f"{_at(d)}: field 'id' {d['id']!r} is also the id of the "
                                f"record at {ids[d['id']]}")
            ids[d["id"]] = _at(d)
            key = _norm(d["question"])
            if key in questions:
                where, other = questions[key]
                if other != name:
                    raise DataError(f"{_at(d)}: field 'question' {d['question']!r} is also in "
                                    f"the {other} set at {where}; a question belongs to one set")
                raise DataError(f"{_at(d)}: field 'question' {d['question']!r} repeats the "
                                f"question at {where}")
            questions[key] = (_at(d), name)


def assign_kinds(drafts: dict[str, list[dict]]) -> None:
    """Give every draft without a field the kind of its answer (kinds.py), or `imported`."""
    kinds: list[tuple[dict, str]] = []
    counts: dict[str, set[str]] = {}
    for name in SETS:
        for d in drafts[name]:
            if "field" in d:
                continue
            kind = infer_kind(d["question"], d["answer"])
            kinds.append((d, kind))
            if name in ("forget", "retain"):
                counts.setdefault(kind, set()).add(d["key"])
    field_of = settle_kinds(counts)
    for d, kind in kinds:
        d["field"] = field_of.get(kind, OTHER)


class Pool:
    """Distinct answers (by normalised text) in canonical order, with each one's position.

    The text kept for a normalised answer is the smallest of its spellings in the data, so the
    pool does not depend on the order of rows either."""

    def __init__(self, answers: dict[str, str]):
        self.keys = sorted(answers)
        self.texts = [answers[k] for k in self.keys]
        self.index = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def sample(self, rng: random.Random, taken: set[str], need: int) -> list[int]:
        """Positions of up to `need` answers whose normalised text is not in `taken`, drawn as
        rng.sample(free answers in pool order, n) would draw them, without building that list."""
        index = self.index
        excluded = sorted(index[t] for t in taken if t in index)
        free = len(self.keys) - len(excluded)
        out = []
        for j in rng.sample(range(free), min(need, free)):
            for e in excluded:  # the j-th free position, skipping the excluded ones
                if e > j:
                    break
                j += 1
            out.append(j)
        return out


def _add(pool: dict[str, str], key: str, text: str) -> None:
    old = pool.get(key)
    if old is None or text < old:
        pool[key] = text


def answer_pools(drafts: dict[str, list[dict]]) -> tuple[dict[str, Pool], Pool]:
    """Distinct answers per field and over all fields."""
    by_field: dict[str, dict[str, str]] = {}
    every: dict[str, str] = {}
    for name in SETS:
        for d in drafts[name]:
            _add(by_field.setdefault(d["field"], {}), d["key"], d["answer"])
            _add(every, d["key"], d["answer"])
    return {f: Pool(v) for f, v in by_field.items()}, Pool(every)


def perturbed(d: dict, pools: dict[str, Pool], every: Pool, seed: int) -> list[str]:
    """The record's 5 wrong answers: its own, then its field's, then (only if short) any field's."""
    chosen: list[str] = []
    taken = {d["key"], _norm(d["paraphrased_answer"])}
    for p in list(d.get("perturbed_answers", []))[:N_PERTURBED]:
        chosen.append(p)
        taken.add(_norm(p))
    # The data's own wrong answers are taken in file order.
    for p in d.get("wrong_answers", []):
        if len(chosen) >= N_PERTURBED:
            break
        if _norm(p) not in taken:
            chosen.append(p)
            taken.add(_norm(p))
    if len(chosen) < N_PERTURBED:
        rng = random.Random(f"unlearn_lab.import.perturbed:{seed}:{d['id']}")
        for pool in (pools[d["field"]], every):
            need = N_PERTURBED - len(chosen)
            if need <= 0:
                break
            for j in pool.sample(rng, taken, need):
                chosen.append(pool.texts[j])
                taken.add(pool.keys[j])
    if len(chosen) < N_PERTURBED:
        raise DataError(f"{_at(d)}: field 'perturbed_answers': found {len(chosen)} wrong "
                        f"answer(s), need {N_PERTURBED}; give perturbed answers in the data, or "
                        f"import more records (their answers are the pool)")
    return chosen


def finish_records(drafts: dict[str, list[dict]], seed: int, max_chars: int,
                   on_long: str, locations: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Records from the drafts (which are used up). `locations`, when given, receives
    id -> "file:line" for records whose origin is not a line (items of a JSON list)."""
    cut = limit_length(drafts, max_chars, on_long)
    if cut:
        log.warning(f"data.import: cut {cut} record(s) to max_chars={max_chars} characters "
                    "(data.import.on_long: truncate)")
    for name in SETS:
        for n, d in enumerate(drafts[name], 1):
            d["key"] = _norm(d["answer"])
            made = d["derived"] = []
            if "id" not in d:
                d["id"] = f"{name}.{n:04d}"
                made.append("id")
            if "field" not in d:
                made.append("field")
            for field, value in (("subject", d["id"]), ("answer_text", d["answer"]),
                                 ("paraphrased_answer", d["answer"])):
                if field not in d:
                    d[field] = value
                    made.append(field)
    assign_kinds(drafts)
    check_across_sets(drafts)
    pools, every = answer_pools(drafts)
    sets: dict[str, list[dict]] = {}
    for name in SETS:
        sets[name] = []
        spent = drafts[name]
        for i, d in enumerate(spent):
            spent[i] = None  # each draft is dropped once its record is made: one copy of the data
            made = d["derived"]
            if len(d.get("perturbed_answers", [])) < N_PERTURBED:
                made.append("perturbed_answers")
            rec = make_record(
                rid=d["id"], subject=d["subject"], field=d["field"], question=d["question"],
                answer=d["answer"], answer_text=d["answer_text"],
                paraphrased_answer=d["paraphrased_answer"],
                perturbed_answers=perturbed(d, pools, every, seed), split=name, source="import",
                correlated=d.get("correlated", False))
            rec["origin"] = d["origin"]
            if locations is not None and _at(d) != d["origin"]:
                locations[rec["id"]] = _at(d)
            if made:
                rec["derived"] = [f for f in SCHEMA if f in made]
            for key in ("wrong_answers", "paraphrased_question"):
                if key in d:
                    rec[key] = d[key]
            for field, problem in _record_errors(rec, name):
                raise DataError(f"{_at(d)} (id={rec['id']!r}): field '{field}' {problem}")
            sets[name].append(rec)
        drafts[name] = []
    return sets
