"""Checks on built sets that need what the data stage does not have by itself (a tokenizer), or
that later stages apply, so a stage can run them before any model work starts.

Each raises DataError naming the record's origin ("file:line") for imported records, or the set,
record number and id for the others, and the field.
"""
from __future__ import annotations

from typing import Callable, Mapping

from .records import DataError

CHECKED_SETS = ("forget", "retain", "holdout", "world", "replay")


def _where(name: str, i: int, rec: dict) -> str:
    return rec.get("origin") or f"{name}: record {i} (id={rec.get('id')!r})"


def check_fits(sets: Mapping[str, list[dict]], count_tokens: Callable[[str], int],
               max_length: int) -> None:
    """Every question leaves room for at least one answer token within max_length tokens.

    `count_tokens(question)` is the number of tokens of the question's prompt (the chat template
    applied, as modeling.encode_qa builds it); encode_qa keeps the first max_length tokens of
    prompt + answer, so a question fits when its prompt has fewer than max_length tokens.
    """
    for name, records in sets.items():
        for i, rec in enumerate(records):
            n = count_tokens(rec["question"])
            if n >= max_length:
                raise DataError(f"{_where(name, i, rec)}: field 'question' is {n} tokens as a "
                                f"prompt, which leaves no room for an answer within "
                                f"model.max_length={max_length}; shorten the question or raise "
                                "model.max_length")


def check_contrast(sets: Mapping[str, list[dict]]) -> None:
    """The represent stage contrasts every forget and retain answer with another answer of its
    field from the forget, retain and holdout sets (`sentence_candidates` in
    robustness/representation.py): each such record needs at least one."""
    by_field: dict[str, set[str]] = {}
    for name in ("forget", "retain", "holdout"):
        for rec in sets.get(name, []):
            by_field.setdefault(rec["field"], set()).add(rec["answer"])
    for name in ("forget", "retain"):
        for i, rec in enumerate(sets.get(name, [])):
            answers = by_field[rec["field"]]
            if len(answers) < 2 and rec["answer"] in answers:  # (never a copy of the set)
                raise DataError(f"{_where(name, i, rec)}: field 'field' {rec['field']!r}: no other "
                                "record of this field in the forget, retain and holdout sets; the "
                                "represent stage contrasts each answer with another of its field "
                                "(add records of this field, or leave the field out to have it "
                                "inferred)")
