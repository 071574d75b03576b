"""What the importer makes up: deterministic draws independent of row order, random labels as
before, and wrong answers of the answer's kind (year, date, number, place, person)."""
from __future__ import annotations

import random

import pytest

from unlearn_lab.data import make_random_labels
from unlearn_lab.data.checks import check_contrast
from unlearn_lab.data.derive import Pool
from unlearn_lab.data.kinds import infer_kind

from .import_fixtures import (
    FOODS, PEOPLE, PLACES, RAW, YEARS, build, build_benchmark, jsonl, kinds_retain, write,
)


# linear import, deterministic draws independent of row order

def test_pool_sample_draws_exactly_like_random_sample_over_the_free_answers():
    answers = {f"a{i:03d}": f"A{i:03d}" for i in range(40)}
    pool = Pool(answers)
    for trial in range(200):
        rng = random.Random(trial)
        taken = set(rng.sample(sorted(answers), rng.randrange(0, 10))) | {"not in the pool"}
        need = rng.randrange(1, 8)
        free = [t for k, t in zip(pool.keys, pool.texts) if k not in taken]
        expected = random.Random(f"x{trial}").sample(free, min(need, len(free)))
        got = [pool.texts[j] for j in pool.sample(random.Random(f"x{trial}"), taken, need)]
        assert got == expected


def test_derived_draws_are_deterministic_and_independent_of_row_order(tmp_path):
    rows = [{"id": f"k{i}", "question": q, "answer": a}
            for i, (q, a) in enumerate(YEARS + PLACES + PEOPLE + FOODS)]
    forget = write(tmp_path / "f.jsonl", jsonl([{"id": "f1", "question": "Q of Zorb?",
                                                 "answer": "Blix"}]))

    def draws(order, seed=0, name="r.jsonl"):
        retain = write(tmp_path / name, jsonl([rows[i] for i in order]))
        sets = build({"forget": forget, "retain": retain}, seed=seed)
        return {r["id"]: r["perturbed_answers"] for n in ("forget", "retain") for r in sets[n]}

    order = list(range(len(rows)))
    first = draws(order)
    assert draws(order) == first
    random.Random(1).shuffle(order)
    assert draws(order, name="shuffled.jsonl") == first
    assert draws(order, seed=1) != first


def test_random_labels_draw_as_before_for_synthetic_data():
    """The linear make_random_labels draws what the list-building one did (pipeline outputs)."""
    def reference(forget, pool, k, seed):  # the implementation before issue 12
        rng = random.Random(f"unlearn_lab.random_labels:{seed}")
        answers = {}
        for rec in [r for r in pool if r.get("split") != "holdout"] + list(forget):
            answers.setdefault(rec["field"], {})[rec["answer"]] = None
        out = []
        for rec in forget:
            given = [a for a in dict.fromkeys(rec.get("wrong_answers", [])) if a != rec["answer"]][:k]
            wrong = [a for a in answers[rec["field"]]
                     if a != rec["answer"] and a != rec.get("subject") and a not in given]
            for j, a in enumerate(given + rng.sample(wrong, k - len(given))):
                out.append({"id": f"{rec['id']}.rl{j}", "source_id": rec["id"],
                            "question": rec["question"], "answer": a})
        return out

    for cfg in ({}, {"split": "incident"}, {"benchmark": "world"}):
        for seed in (0, 5):
            sets = build_benchmark(cfg, RAW, seed)
            pool = [r for records in sets.values() for r in records]
            for k in (1, 2, 3):
                assert make_random_labels(sets["forget"], pool, k, seed) == \
                    reference(sets["forget"], pool, k, seed)


# answer kinds

@pytest.mark.parametrize("question, answer, kind", [
    ("In what year was X born?", "1969", "year"),
    ("When did X die?", "500 BC", "year"),
    ("Which year?", "742", "year"),
    ("When was X born?", "20 July 1969", "date"),
    ("When?", "July 20, 1969", "date"),
    ("When?", "1969-07-20", "date"),
    ("How many moons?", "Three", "number"),
    ("How far?", "1,200 km", "number"),
    ("What share?", "25%", "number"),
    ("Where was X born?", "Paris, France", "place"),
    ("In which city was X born?", "New York", "place"),
    ("What is the highest peak?", "Mount Everest", "place"),
    ("Who founded Zorb?", "Queen Ama", "person"),
    ("Who wrote it?", "Madonna", "person"),
    ("What is the name of his wife?", "Mary Anne Smith", "person"),
    ("Who is the composer?", "Ludwig van Beethoven", "person"),
    ("Which company does X work for?", "Brightwater Labs", "imported"),
    ("Where is X employed?", "Corvane Systems", "imported"),
    ("What is his nationality?", "French", "imported"),
    ("What colour is the sky?", "Green", "imported"),
    ("What genre?", "Basil Mahfouz writes historical fiction.", "imported"),
])
def test_infer_kind(question, answer, kind):
    assert infer_kind(question, answer) == kind


def test_wrong_answers_are_of_the_answer_kind_without_a_field_column(tmp_path):
    forget = write(tmp_path / "f.jsonl", jsonl([
        {"question": "In what year was the Zorb bridge built?", "answer": "1911"},
        {"question": "Where was the Zorb poet Ama born?", "answer": "Seville"},
        {"question": "Who founded the Zorb choir?", "answer": "Wren Carrow"},
        {"question": "What do people on Zorb eat?", "answer": "Green jelly"},
        {"question": "Which field does Zorb's mayor rule?", "answer": "Zorb", "field": "realm"}]))
    sets = build({"forget": forget, "retain": kinds_retain(tmp_path)})
    year, place, person, other, given = sets["forget"]
    assert [r["field"] for r in sets["forget"]] == ["year", "place", "person", "imported", "realm"]
    assert "field" in year["derived"] and "field" not in given["derived"]
    pools = {"year": YEARS, "place": PLACES, "person": PEOPLE, "imported": FOODS}
    for rec in (year, place, person, other):
        assert set(rec["perturbed_answers"]) <= {a for _, a in pools[rec["field"]]}, rec
    # A field of the data's own with one answer: its wrong answers come from the other fields.
    assert len(set(given["perturbed_answers"])) == 5
    # Random labels: of the same kind too; the lone 'realm' record falls back to other answers.
    pool = [r for records in sets.values() for r in records]
    labels = make_random_labels(sets["forget"], pool, 3, seed=0)
    for rec in (year, place, person, other):
        mine = [l["answer"] for l in labels if l["source_id"] == rec["id"]]
        assert len(mine) == 3 and set(mine) <= {a for _, a in pools[rec["field"]]}
    assert len({l["answer"] for l in labels if l["source_id"] == given["id"]}) == 3


def test_a_kind_with_too_few_answers_keeps_the_field_imported(tmp_path):
    # Five years only (fewer than six distinct): they stay `imported`, as does the rest.
    forget = write(tmp_path / "f.jsonl", jsonl([{"question": "When was Zorb founded?",
                                                 "answer": "1901"}]))
    retain = kinds_retain(tmp_path, YEARS[:4] + PEOPLE[:3])
    sets = build({"forget": forget, "retain": retain})
    assert {r["field"] for n in ("forget", "retain") for r in sets[n]} == {"imported"}


def test_a_small_imported_group_takes_in_the_smallest_kind(tmp_path):
    # One answer of no kind: `imported` would hold a single answer (nothing to contrast it with
    # in the represent stage), so the smallest kind (the places, 7 answers) joins it.
    forget = write(tmp_path / "f.jsonl", jsonl([{"question": "What do people on Zorb eat?",
                                                 "answer": "Green jelly"}]))
    sets = build({"forget": forget, "retain": kinds_retain(tmp_path, YEARS + PLACES[:7] + PEOPLE)})
    fields = {r["answer"]: r["field"] for n in ("forget", "retain") for r in sets[n]}
    assert fields["Green jelly"] == fields["Lyon"] == "imported"
    assert fields["1900"] == "year" and fields["Ilona Marsh"] == "person"
    check_contrast(sets)
