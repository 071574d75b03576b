"""Random-label targets: each forget question paired with wrong answers of the same field.

Wrong answers come from the same field's answer pool so they are plausible in type (a wrong city
for a birthplace): the model is pushed off the true fact without learning an obviously odd
answer shape. Imported records (source "import") whose field has too few other answers are
topped up from the answers of every other imported record, the same fallback their perturbed
answers use (derive.py); for the other sources too few is an error.

Answers are compared after normalisation (records._norm), so a case or spacing variant of the
true answer is never a wrong one. Drawing costs a few index computations per record, never a
copy of the pool, so the stage is linear in the number of records.
"""
from __future__ import annotations

import random
from typing import Iterator

from .records import DataError, _norm


class _Answers:
    """Distinct answers (by normalised text) in first-seen order, with each one's position."""

    def __init__(self):
        self.texts: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, text: str) -> None:
        key = _norm(text)
        if key not in self.index:
            self.index[key] = len(self.texts)
            self.texts.append(text)

    def free(self, taken: set[str]) -> tuple[int, list[int]]:
        """(how many answers are not taken, the sorted positions of the taken ones)."""
        excluded = sorted(self.index[t] for t in taken if t in self.index)
        return len(self.texts) - len(excluded), excluded

    def pick(self, j: int, excluded: list[int]) -> str:
        """The j-th answer that is not excluded (positions sorted)."""
        for e in excluded:
            if e > j:
                break
            j += 1
        return self.texts[j]


class _Pools:
    def __init__(self, forget: list[dict], pool: list[dict]):
        self.by_field: dict[str, _Answers] = {}
        self.imported = _Answers()
        # First-seen order: deterministic, unlike a set.
        for rec in [r for r in pool if r.get("split") != "holdout"] + list(forget):
            self.by_field.setdefault(rec["field"], _Answers()).add(rec["answer"])
            if rec.get("source") == "import":
                self.imported.add(rec["answer"])

    def plan(self, rec: dict, k: int):
        """(given wrong answers, taken keys, same-field free count and exclusions, fallback
        free count and exclusions or None)."""
        truth = _norm(rec["answer"])
        taken = {truth}
        if rec.get("subject"):
            # A person is never their own collaborator, so their own name is no useful wrong answer.
            taken.add(_norm(rec["subject"]))
        given = []
        for a in rec.get("wrong_answers", []):
            if len(given) < k and _norm(a) not in taken:
                given.append(a)
                taken.add(_norm(a))
        same = self.by_field[rec["field"]]
        n_same, ex_same = same.free(taken)
        fallback = None
        if len(given) + n_same < k and rec.get("source") == "import":
            # The fallback pool holds the same-field answers too: exclude them from it as well.
            taken_all = taken | {_norm(a) for a in same.texts}
            fallback = self.imported.free(taken_all)
        return given, same, n_same, ex_same, fallback


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"random labels: k must be a positive integer, got {k!r}")


def label_shortfalls(forget: list[dict], pool: list[dict], k: int) -> Iterator[tuple[dict, int]]:
    """(forget record, wrong answers available) for each record make_random_labels would refuse."""
    _check_k(k)
    pools = _Pools(forget, pool)
    for rec in forget:
        given, _, n_same, _, fallback = pools.plan(rec, k)
        available = len(given) + n_same + (fallback[0] if fallback else 0)
        if available < k:
            yield rec, available


def make_random_labels(forget: list[dict], pool: list[dict], k: int = 3,
                       seed: int = 0) -> list[dict]:
    """For each forget record, k records {id, source_id, question, answer} with distinct wrong
    answers drawn (seeded) from the answers of `pool` records with the same field.

    A forget record's own `wrong_answers` (known-wrong answers from imported data) come first,
    in their order; the pool tops them up to k (for an imported record, answers of other
    fields when its own field has too few).
    Pool records with split "holdout" are skipped: random labels are trained on, and a holdout
    person's answers must stay unseen for them to remain membership-inference non-members.
    """
    _check_k(k)
    rng = random.Random(f"unlearn_lab.random_labels:{seed}")
    pools = _Pools(forget, pool)
    out = []
    for rec in forget:
        rid = rec["id"]
        given, same, n_same, ex_same, fallback = pools.plan(rec, k)
        need = k - len(given)
        if fallback is None:
            if n_same < need:
                raise DataError(f"random labels: record id={rid!r}: field '{rec['field']}' has "
                                f"only {len(given) + n_same} wrong answers in the pool, need k={k}")
            # rng.sample over the free answers in pool order, drawn by position.
            picks = [same.pick(j, ex_same) for j in rng.sample(range(n_same), need)]
        else:
            n_other, ex_other = fallback
            if n_same + n_other < need:
                raise DataError(f"random labels: record id={rid!r}: only "
                                f"{len(given) + n_same + n_other} wrong answers among the "
                                f"imported answers, need k={k}")
            picks = [same.pick(j, ex_same) for j in rng.sample(range(n_same), n_same)]
            picks += [pools.imported.pick(j, ex_other)
                      for j in rng.sample(range(n_other), need - n_same)]
        for j, answer in enumerate(given + picks):
            out.append({"id": f"{rid}.rl{j}", "source_id": rid, "question": rec["question"],
                        "answer": answer})
    return out
