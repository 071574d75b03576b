"""Other wordings of a record's question, for the paraphrase attack.

Generated records get the generator's other templates for their field; imported records the
paraphrase the user gave (TOFU's `paraphrased_question`), or none.
"""
from __future__ import annotations

from . import world
from .pools import QUESTIONS


def paraphrased_questions(record: dict, n: int) -> list[str]:
    """Up to `n` wordings of the record's question other than its own, in template order."""
    source, field, subject = record["source"], record["field"], record["subject"]
    if source == "synthetic" and field in QUESTIONS:
        candidates = [t.format(subject) for t in QUESTIONS[field]]
    elif source == "world" and field in world.QUESTION:
        shown = world.display_name(subject)
        candidates = [t.format(shown) for t in (world.QUESTION[field], *world.QUESTION_PARAPHRASES[field])]
    else:
        given = record.get("paraphrased_question")
        candidates = [given] if given else []
    own = record["question"].strip().casefold()
    return [q for q in dict.fromkeys(candidates) if q.strip().casefold() != own][:n]
