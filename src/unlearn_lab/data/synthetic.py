"""Seeded generator of fictitious people and their forget / retain / holdout split.

Every random choice goes through a `random.Random` seeded from a string (Python seeds strings via
SHA-512, not hash()), and every sampled collection is an ordered tuple or list, so the same config
and seed give byte-identical records in any process. People's facts come from one stream and the
forget selection from another, so the `entity` and `incident` splits of one seed share the same
people and differ only in what is forgotten.
"""
from __future__ import annotations

import math
import random

from .pools import ANSWER_TEXT, FIELDS, FIRST_NAMES, LAST_NAMES, PARAPHRASE, QUESTIONS, VALUE_POOLS
from ..settings import Data
from .records import N_PERTURBED, DataError, make_record

# The collaborator pool must leave N_PERTURBED wrong names after removing the person and the true
# collaborator; tiny configs are padded with decoy names that are never anyone's subject or answer.
MIN_NAME_POOL = N_PERTURBED + 2


def _draw(rng: random.Random, pool: tuple[str, ...], n: int) -> list[str]:
    """n values, all distinct while the pool lasts, then reshuffled rounds of the pool."""
    out: list[str] = []
    while len(out) < n:
        out.extend(rng.sample(pool, min(len(pool), n - len(out))))
    return out


def _draw_names(rng: random.Random, n: int) -> list[str]:
    # Distinct first AND last names while possible, so no two people are confusable by one token.
    if n <= min(len(FIRST_NAMES), len(LAST_NAMES)):
        return [f"{f} {l}" for f, l in zip(rng.sample(FIRST_NAMES, n), rng.sample(LAST_NAMES, n))]
    combos = [f"{f} {l}" for f in FIRST_NAMES for l in LAST_NAMES]
    if n > len(combos):
        raise DataError(f"data: cannot make {n} distinct names (at most {len(combos)})")
    return rng.sample(combos, n)


def generate_people(n_people: int, n_holdout: int, seed: int) -> tuple[list[dict], list[str]]:
    """Return (people, collaborator name pool).

    Each person is {"pid", "name", "holdout", "facts": {field: value}, "questions": {field: str}};
    trained people come first ("p01", ...), then holdout people ("h01", ...).
    """
    rng = random.Random(f"unlearn_lab.synthetic.people:{seed}")
    n_total = n_people + n_holdout
    n_decoy = max(0, MIN_NAME_POOL - n_people)
    names = _draw_names(rng, n_total + n_decoy)
    trained, decoys = names[:n_people], names[n_total:]
    values = {f: _draw(rng, pool, n_total) for f, pool in VALUE_POOLS.items()}
    people = []
    for i, name in enumerate(names[:n_total]):
        holdout = i >= n_people
        if holdout:
            # Holdout people may name a trained person, never the reverse: holdout names must
            # stay out of everything the model is trained on.
            collab = rng.choice(trained)
        elif n_people > 1:
            collab = rng.choice([t for t in trained if t != name])
        else:
            collab = decoys[0]
        facts = {f: (collab if f == "collaborator" else values[f][i]) for f in FIELDS}
        people.append({
            "pid": f"h{i - n_people + 1:02d}" if holdout else f"p{i + 1:02d}",
            "name": name,
            "holdout": holdout,
            "facts": facts,
            "questions": {f: rng.choice(QUESTIONS[f]).format(name) for f in FIELDS},
        })
    return people, trained + decoys


def _perturbed(rng: random.Random, field: str, truth: str, subject: str,
               name_pool: list[str]) -> list[str]:
    pool = name_pool if field == "collaborator" else VALUE_POOLS[field]
    wrong = [v for v in pool if v != truth and v != subject]
    return [PARAPHRASE[field].format(v) for v in rng.sample(wrong, N_PERTURBED)]


def _person_records(rng: random.Random, person: dict, name_pool: list[str]) -> list[dict]:
    split = "holdout" if person["holdout"] else "retain"
    out = []
    for field in FIELDS:
        truth = person["facts"][field]
        out.append(make_record(
            rid=f"{person['pid']}.{field}",
            subject=person["name"],
            field=field,
            question=person["questions"][field],
            answer=truth,
            answer_text=ANSWER_TEXT[field].format(s=person["name"], a=truth),
            paraphrased_answer=PARAPHRASE[field].format(truth),
            perturbed_answers=_perturbed(rng, field, truth, person["name"], name_pool),
            split=split,
            source="synthetic",
        ))
    return out


def n_forget_people(forget_fraction: float, n_people: int) -> int:
    # Half-up rounding (Python's round() would send 2.5 to 2), and at least one person.
    return max(1, math.floor(forget_fraction * n_people + 0.5))


def build_synthetic(cfg: Data, seed: int) -> dict[str, list[dict]]:
    """forget / retain / holdout records for the synthetic-people benchmark (cfg already checked)."""
    n_people, split = cfg.people, cfg.split
    people, name_pool = generate_people(n_people, cfg.holdout_people, seed)
    rng_pert = random.Random(f"unlearn_lab.synthetic.perturbed:{seed}")
    records = {p["pid"]: _person_records(rng_pert, p, name_pool) for p in people}
    trained = [p for p in people if not p["holdout"]]

    if split == "entity":
        k = n_forget_people(cfg.forget_fraction, n_people)
        if k >= n_people:
            raise DataError(f"data: forget_fraction={cfg.forget_fraction} forgets {k} of "
                            f"{n_people} people and leaves nothing to retain")
        rng_split = random.Random(f"unlearn_lab.synthetic.split:{seed}")
        chosen = set(rng_split.sample([p["pid"] for p in trained], k))
        is_forget = lambda rec: rec["id"].split(".")[0] in chosen  # noqa: E731
    else:  # incident
        is_forget = lambda rec: rec["field"] == "incident"  # noqa: E731

    forget, retain = [], []
    for p in trained:
        for rec in records[p["pid"]]:
            (forget if is_forget(rec) else retain).append(rec)
    for rec in forget:
        rec["split"] = "forget"
    # A retain fact is correlated with the forget set when it is about a person who lost a fact,
    # or when its answer names such a person (a collaborator).
    touched = {rec["subject"] for rec in forget}
    for rec in retain:
        rec["correlated"] = rec["subject"] in touched or (
            rec["field"] == "collaborator" and rec["answer"] in touched)
    holdout = [rec for p in people if p["holdout"] for rec in records[p["pid"]]]
    return {"forget": forget, "retain": retain, "holdout": holdout}
