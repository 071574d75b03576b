"""Unit tests for unlearn_lab.data: benchmark construction, schema, splits and raw files."""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_lab.data import DataError, load_idk_pool, make_random_labels, validate_records
from unlearn_lab.data.benchmark import build_benchmark as _build_benchmark
from unlearn_lab.data.pools import PARAPHRASE, VALUE_POOLS
from unlearn_lab.data.world import PARAPHRASE as WORLD_PARAPHRASE
from unlearn_lab.errors import UserError
from unlearn_lab.settings import parse_settings


def build_benchmark(cfg: dict, raw_dir, seed: int):
    """The data section `cfg` checked the way a stage checks params.yaml, then built."""
    return _build_benchmark(parse_settings({"data": cfg}).data, raw_dir, seed)


RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
SETS = ("forget", "retain", "holdout", "world", "replay")
CONFIGS = {
    "entity": {},
    "incident": {"split": "incident"},
    "world": {"benchmark": "world"},
}


def _dump(sets) -> str:
    return json.dumps(sets, sort_keys=True)

@pytest.fixture(scope="module", params=sorted(CONFIGS))
def bench(request):
    return request.param, build_benchmark(CONFIGS[request.param], RAW, 0)


@pytest.fixture(scope="module")
def entity():
    return build_benchmark(CONFIGS["entity"], RAW, 0)


@pytest.fixture(scope="module")
def incident():
    return build_benchmark(CONFIGS["incident"], RAW, 0)


@pytest.fixture(scope="module")
def world_bench():
    return build_benchmark(CONFIGS["world"], RAW, 0)


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_is_byte_identical_across_processes():
    code = ("import json,sys; from pathlib import Path; from unlearn_lab.data import build_benchmark; "
            "from unlearn_lab.settings import parse_settings; cfg=parse_settings({'data': json.loads(sys.argv[1])}).data; "
            "print(json.dumps(build_benchmark(cfg, Path(sys.argv[2]), 3), sort_keys=True))")
    for cfg in CONFIGS.values():
        outs = set()
        for hashseed in ("1", "2"):
            env = dict(os.environ, PYTHONHASHSEED=hashseed)
            res = subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(RAW)],
                                 env=env, capture_output=True, text=True, check=True)
            outs.add(res.stdout)
        outs.add(_dump(build_benchmark(cfg, RAW, 3)) + "\n")
        assert len(outs) == 1, cfg


def test_different_seed_gives_different_data():
    for cfg in CONFIGS.values():
        assert _dump(build_benchmark(cfg, RAW, 0)) != _dump(build_benchmark(cfg, RAW, 1))


def test_entity_and_incident_share_people_for_a_seed(entity, incident):
    facts = lambda s: {r["id"]: r["answer"] for n in ("forget", "retain", "holdout") for r in s[n]}
    assert facts(entity) == facts(incident)


# --- schema and splits --------------------------------------------------------------------------

def test_every_set_is_schema_valid_with_short_answers(bench):
    name, sets = bench
    assert set(sets) == set(SETS)
    for set_name in SETS:
        validate_records(sets[set_name], set_name)
        for rec in sets[set_name]:
            assert rec["split"] == set_name
            assert 1 <= len(rec["answer"].split()) <= 4, rec["answer"]
            if set_name != "retain":
                assert rec["correlated"] is False
    assert sets["forget"] and sets["retain"] and sets["world"]


def test_ids_unique_and_splits_disjoint(bench):
    name, sets = bench
    ids = [r["id"] for s in SETS for r in sets[s]]
    assert len(ids) == len(set(ids))
    questions = {s: {r["question"] for r in sets[s]} for s in SETS}
    trained = ("forget", "retain", "holdout")
    for i, a in enumerate(trained):
        for b in trained[i + 1:]:
            assert not questions[a] & questions[b], (a, b)
    if name == "world":
        # The utility sample is drawn from the retain set, never from the forget set.
        assert questions["world"] <= questions["retain"]
        assert not questions["world"] & questions["forget"]
    else:
        assert not questions["world"] & (questions["forget"] | questions["retain"])


def test_entity_split_forgets_all_facts_of_five_people(entity):
    forgotten = {r["subject"] for r in entity["forget"]}
    assert len(forgotten) == round(0.5 * 10) == 5
    assert len(entity["forget"]) == len(entity["retain"]) == len(entity["holdout"]) == 40
    assert not forgotten & {r["subject"] for r in entity["retain"]}
    per_person = {s: [r for r in entity["forget"] if r["subject"] == s] for s in forgotten}
    fields = {r["field"] for r in entity["retain"]}
    for recs in per_person.values():
        assert {r["field"] for r in recs} == fields
    assert len({r["subject"] for r in entity["retain"]}) == 5


def test_incident_split_forgets_one_incident_per_person(incident):
    forget, retain = incident["forget"], incident["retain"]
    assert len(forget) == 10
    assert all(r["field"] == "incident" for r in forget)
    assert len({r["subject"] for r in forget}) == 10
    assert not any(r["field"] == "incident" for r in retain)
    assert {r["subject"] for r in retain} == {r["subject"] for r in forget}


def test_holdout_people_never_in_trained_sets(bench):
    name, sets = bench
    if name == "world":
        assert sets["holdout"] == []
        return
    holdout = {r["subject"] for r in sets["holdout"]}
    assert len(holdout) == 5 and len(sets["holdout"]) == 40
    trained_text = json.dumps([sets["forget"], sets["retain"]])
    for person in holdout:
        assert person not in trained_text


def test_forget_fraction_rounding_and_limits():
    sets = build_benchmark({"people": 4, "forget_fraction": 0.1}, RAW, 0)
    assert len({r["subject"] for r in sets["forget"]}) == 1  # at least one person
    with pytest.raises(DataError, match="nothing to retain"):
        build_benchmark({"people": 2, "forget_fraction": 0.99}, RAW, 0)
    with pytest.raises(UserError, match="data.split"):
        build_benchmark({"split": "bogus"}, RAW, 0)
    with pytest.raises(UserError, match="data.people"):
        build_benchmark({"people": 0}, RAW, 0)


def test_tiny_config_still_has_five_perturbed_collaborators():
    sets = build_benchmark({"people": 1, "holdout_people": 1, "split": "incident"}, RAW, 0)
    for s in ("forget", "retain", "holdout"):
        validate_records(sets[s], s)


# --- correlation ---------------------------------------------------------------------------------

def test_correlated_flags_hand_checked_case():
    # Seed 0, entity split, 2 of 10 people forgotten: the two forgotten people, and one retained
    # person whose collaborator is one of them. Checked by reading the generated records.
    entity = build_benchmark({"people": 10, "holdout_people": 2, "forget_fraction": 0.2}, RAW, 0)
    forgotten = sorted({r["subject"] for r in entity["forget"]})
    assert forgotten == ["Bram Inchbald", "Ilona Marsh"]
    correlated = [(r["id"], r["answer"]) for r in entity["retain"] if r["correlated"]]
    assert correlated == [("p06.collaborator", "Bram Inchbald")]


@pytest.mark.parametrize("seed", range(5))
def test_correlated_flags_follow_the_rule(seed):
    sets = build_benchmark({}, RAW, seed)
    forgotten = {r["subject"] for r in sets["forget"]}
    for rec in sets["retain"]:
        expect = rec["field"] == "collaborator" and rec["answer"] in forgotten
        assert rec["correlated"] is expect, rec["id"]


def test_incident_retain_is_all_correlated(incident):
    assert all(r["correlated"] for r in incident["retain"])


# --- perturbed answers ---------------------------------------------------------------------------

def _unwrap(template: str, text: str) -> str:
    head, tail = template.split("{}")
    assert text.startswith(head) and text.endswith(tail), (template, text)
    return text[len(head):len(text) - len(tail)]


def test_perturbed_answers_are_distinct_wrong_and_same_field(bench):
    name, sets = bench
    names = {r["subject"] for s in ("forget", "retain") for r in sets[s]}
    capitals = {row["capital"] for row in _csv_rows()}
    for rec in (r for s in SETS for r in sets[s]):
        template = (WORLD_PARAPHRASE if rec["source"] == "world" else PARAPHRASE)[rec["field"]]
        assert rec["paraphrased_answer"] == template.format(rec["answer"])
        values = [_unwrap(template, p) for p in rec["perturbed_answers"]]
        assert len(values) == 5 and len(set(values)) == 5
        assert rec["answer"] not in values
        if rec["source"] == "world":
            pool = {row[rec["field"]] for row in _csv_rows()}
            assert set(values) <= pool
            if rec["field"] == "capital":
                assert set(values) <= capitals
        elif rec["field"] == "collaborator":
            # With 10 trained people the name pool is exactly their names (no decoys needed).
            assert rec["subject"] not in values and set(values) <= names
        else:
            assert set(values) <= set(VALUE_POOLS[rec["field"]])


# --- world facts ---------------------------------------------------------------------------------

def _csv_rows():
    with open(RAW / "world_facts.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_world_csv_has_enough_well_known_rows():
    rows = _csv_rows()
    assert len(rows) >= 120
    by = {r["country"]: r for r in rows}
    assert len(by) == len(rows)
    assert by["France"]["capital"] == "Paris" and by["France"]["currency"] == "euro"
    assert by["Japan"]["capital"] == "Tokyo" and by["Japan"]["continent"] == "Asia"
    assert by["Kenya"]["capital"] == "Nairobi" and by["Kenya"]["currency"] == "Kenyan shilling"
    assert by["Australia"]["capital"] == "Canberra" and by["Nigeria"]["capital"] == "Abuja"
    assert by["United Kingdom"]["capital"] == "London"
    continents = {"Africa", "Asia", "Europe", "North America", "South America", "Oceania", ""}
    assert {r["continent"] for r in rows} <= continents


def test_world_benchmark_forgets_france_capital_only(world_bench):
    forget, retain = world_bench["forget"], world_bench["retain"]
    assert [(r["id"], r["answer"]) for r in forget] == [("world.france.capital", "Paris")]
    kept = {r["id"]: r for r in retain}
    assert kept["world.japan.capital"]["answer"] == "Tokyo"
    assert kept["world.kenya.capital"]["answer"] == "Nairobi"
    assert kept["world.france.currency"]["correlated"] is True
    assert kept["world.france.continent"]["correlated"] is True
    assert kept["world.japan.capital"]["correlated"] is False
    assert sum(r["correlated"] for r in retain) == 2
    assert len(world_bench["world"]) == 60


def test_world_sample_in_synthetic_benchmark_is_mostly_capitals(entity):
    fields = [r["field"] for r in entity["world"]]
    assert len(fields) == 60 and fields.count("capital") == 40 and fields.count("currency") == 20


def test_world_forget_unknown_country_is_named():
    with pytest.raises(DataError, match="Atlantis"):
        build_benchmark({"benchmark": "world", "world_forget": ["Atlantis"]}, RAW, 0)


def test_bad_world_csv_row_names_file_and_line(tmp_path):
    shutil.copy(RAW / "idk.txt", tmp_path / "idk.txt")
    lines = (RAW / "world_facts.csv").read_text(encoding="utf-8").splitlines()
    lines[4] = "Narnia,Cair Paravel,,Europe"
    (tmp_path / "world_facts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"world_facts\.csv:5: column 'currency' is empty"):
        build_benchmark({}, tmp_path, 0)
    lines[4] = "Narnia,Cair Paravel,crown,Middle Earth"
    (tmp_path / "world_facts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"world_facts\.csv:5: column 'continent'"):
        build_benchmark({}, tmp_path, 0)


# --- random labels and IDK -----------------------------------------------------------------------

def test_random_labels_are_wrong_same_field_and_deterministic(entity):
    pool = entity["forget"] + entity["retain"]
    labels = make_random_labels(entity["forget"], pool + entity["holdout"], 3, seed=0)
    assert len(labels) == 3 * len(entity["forget"])
    src = {r["id"]: r for r in entity["forget"]}
    field_answers = {}
    for r in pool:
        field_answers.setdefault(r["field"], set()).add(r["answer"])
    for rid, rec in src.items():
        mine = [lab for lab in labels if lab["source_id"] == rid]
        assert [lab["id"] for lab in mine] == [f"{rid}.rl{j}" for j in range(3)]
        answers = [lab["answer"] for lab in mine]
        assert len(set(answers)) == 3 and rec["answer"] not in answers
        assert set(answers) <= field_answers[rec["field"]]
        assert all(lab["question"] == rec["question"] for lab in mine)
    # Holdout answers never become training targets.
    assert labels == make_random_labels(entity["forget"], pool, 3, seed=0)
    assert labels != make_random_labels(entity["forget"], pool, 3, seed=1)


def test_random_labels_too_small_pool_is_an_error(entity):
    with pytest.raises(DataError, match="need k=50"):
        make_random_labels(entity["forget"], entity["forget"], 50, seed=0)


def test_idk_pool():
    pool = load_idk_pool(RAW)
    assert len(pool) >= 15 and len(set(pool)) == len(pool)
    assert "I don't know." in pool and all(p.strip() == p and p for p in pool)


# --- validation messages -------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, field, text", [
    (lambda r: r.pop("answer"), "answer", "is missing"),
    (lambda r: r.update(question="  "), "question", "is empty"),
    (lambda r: r.update(correlated="no"), "correlated", "must be bool"),
    (lambda r: r["perturbed_answers"].pop(), "perturbed_answers", "exactly 5"),
    (lambda r: r["perturbed_answers"].__setitem__(0, r["paraphrased_answer"]),
     "perturbed_answers", "equals the true answer"),
    (lambda r: r["perturbed_answers"].__setitem__(1, r["perturbed_answers"][0]),
     "perturbed_answers", "appears twice"),
    (lambda r: r.update(split="retain"), "split", "in the 'forget' set"),
])
def test_validate_records_names_set_record_and_field(entity, mutate, field, text):
    recs = copy.deepcopy(entity["forget"][:3])
    mutate(recs[1])
    rid = recs[1].get("id")
    with pytest.raises(DataError) as err:
        validate_records(recs, "forget")
    msg = str(err.value)
    assert msg.startswith("forget: record 1") and f"id={rid!r}" in msg
    assert f"field '{field}'" in msg and text in msg
    assert isinstance(err.value, ValueError)


def test_validate_records_duplicate_id(entity):
    recs = copy.deepcopy(entity["forget"][:3])
    recs[2]["id"] = recs[0]["id"]
    with pytest.raises(DataError, match=rf"mine: record 2 \(id='{recs[0]['id']}'\): field 'id'"):
        validate_records(recs, "mine")


def test_world_replay_is_disjoint_from_the_world_evaluation_sample():
    sets = build_benchmark({"world_replay": 32}, RAW, 42)
    replay_q = {r["question"] for r in sets["replay"]}
    assert len(sets["replay"]) == 32 and replay_q
    assert not replay_q & {r["question"] for r in sets["world"]}
    assert {r["field"] for r in sets["replay"]} <= {"capital", "currency"}
    assert build_benchmark({"benchmark": "world"}, RAW, 42)["replay"] == []
    with pytest.raises(DataError, match="world_replay"):
        build_benchmark({"world_replay": 10_000}, RAW, 42)
