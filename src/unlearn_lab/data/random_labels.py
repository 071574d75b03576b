"""Random-label targets: each forget question paired with wrong answers of the same field.

Wrong answers come from the same field's answer pool so they are plausible in type (a wrong city
for a birthplace): the model is pushed off the true fact without learning an obviously odd
answer shape.
"""
from __future__ import annotations

import random

from .records import DataError


def make_random_labels(forget: list[dict], pool: list[dict], k: int = 3,
                       seed: int = 0) -> list[dict]:
    """For each forget record, k records {id, source_id, question, answer} with distinct wrong
    answers drawn (seeded) from the answers of `pool` records with the same field.

    A forget record's own `wrong_answers` (known-wrong answers from imported data) come first,
    in their order; the pool tops them up to k.
    Pool records with split "holdout" are skipped: random labels are trained on, and a holdout
    person's answers must stay unseen for them to remain membership-inference non-members.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"random labels: k must be a positive integer, got {k!r}")
    rng = random.Random(f"unlearn_lab.random_labels:{seed}")
    answers: dict[str, dict[str, None]] = {}
    # dict.fromkeys keeps first-seen order: deterministic, unlike a set.
    for rec in [r for r in pool if r.get("split") != "holdout"] + list(forget):
        answers.setdefault(rec["field"], {})[rec["answer"]] = None
    out = []
    for rec in forget:
        rid, truth = rec["id"], rec["answer"]
        # A person is never their own collaborator, so their own name is no useful wrong answer.
        given = [a for a in dict.fromkeys(rec.get("wrong_answers", [])) if a != truth][:k]
        wrong = [a for a in answers[rec["field"]]
                 if a != truth and a != rec.get("subject") and a not in given]
        if len(given) + len(wrong) < k:
            raise DataError(f"random labels: record id={rid!r}: field '{rec['field']}' has only "
                            f"{len(given) + len(wrong)} wrong answers in the pool, need k={k}")
        for j, answer in enumerate(given + rng.sample(wrong, k - len(given))):
            out.append({"id": f"{rid}.rl{j}", "source_id": rid, "question": rec["question"],
                        "answer": answer})
    return out
