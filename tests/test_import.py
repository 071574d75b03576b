"""Bring your own data: each import format round-trips hand-written fixtures into the schema."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_lab.data import make_random_labels, validate_records
from unlearn_lab.data.benchmark import build_benchmark as _build_benchmark
from unlearn_lab.data.importing import detect_format
from unlearn_lab.settings import Import, parse_settings

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
SMALL_WORLD = {"world_eval_size": 6, "world_replay": 4}

# Retain facts shared by several fixtures: enough distinct answers for 5 perturbed ones each.
RETAIN_QA = [
    ("Who founded Zorb?", "Queen Ama"),
    ("What is the moon of Zorb called?", "Tiko"),
    ("How many suns does Zorb have?", "Three"),
    ("What do people on Zorb eat?", "Moss bread"),
    ("What is the ocean of Zorb called?", "The Vel"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def build_benchmark(cfg: dict, raw_dir, seed: int):
    """The data section `cfg` checked the way a stage checks params.yaml, then built."""
    return _build_benchmark(parse_settings({"data": cfg}).data, raw_dir, seed)


def build(imp: dict, seed: int = 0, **data) -> dict[str, list[dict]]:
    cfg = {"benchmark": "import", **SMALL_WORLD, **data,
           "import": {k: (str(v) if isinstance(v, Path) else v) for k, v in imp.items()}}
    return build_benchmark(cfg, RAW, seed)


def retain_jsonl(tmp_path: Path) -> Path:
    return write(tmp_path / "retain.jsonl",
                 jsonl([{"question": q, "answer": a} for q, a in RETAIN_QA]))


def test_csv_round_trip_with_wrong_answers(tmp_path):
    forget = write(tmp_path / "forget.csv", (
        "question,answer,is_correct\n"
        "What colour is the sky on Zorb?,Green,true\n"
        "What colour is the sky on Zorb?,Purple,false\n"
        '"What is the capital of Zorb, the planet?",Blix,yes\n'
        "What colour is the sky on Zorb?,Orange,0\n"))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)}, random_labels_k=2)
    f = sets["forget"]
    # Wrong rows are not facts: two correct rows, in file order, with their origin lines.
    assert [(r["question"], r["answer"]) for r in f] == [
        ("What colour is the sky on Zorb?", "Green"),
        ("What is the capital of Zorb, the planet?", "Blix")]
    assert [r["origin"] for r in f] == [f"{forget}:2", f"{forget}:4"]
    assert [r["id"] for r in f] == ["forget.0001", "forget.0002"]
    sky = f[0]
    assert sky["wrong_answers"] == ["Purple", "Orange"]
    # The data's own wrong answers come first among the perturbed ones, in file order.
    assert sky["perturbed_answers"][:2] == ["Purple", "Orange"]
    assert sky["answer_text"] == sky["paraphrased_answer"] == "Green"
    assert sky["derived"] == ["id", "subject", "field", "answer_text", "paraphrased_answer",
                              "perturbed_answers"]
    assert sky["source"] == "import" and sky["split"] == "forget" and sky["field"] == "imported"
    assert "wrong_answers" not in f[1]
    # Random labels train on exactly the CSV's wrong answers when there are enough of them.
    labels = make_random_labels(f, sets["retain"], k=2, seed=0)
    assert [l["answer"] for l in labels if l["source_id"] == "forget.0001"] == ["Purple", "Orange"]


def test_jsonl_round_trip_prompt_response_and_question_answer(tmp_path):
    forget = write(tmp_path / "forget.jsonl", jsonl([
        {"prompt": "What is the anthem of Zorb?", "response": "Song of Moss"},
        {"question": "Who rules Zorb today?", "answer": "King Olo", "field": "ruler",
         "subject": "Zorb", "id": "z-ruler", "extra": "ignored"},
    ]))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)})
    a, b = sets["forget"]
    assert (a["question"], a["answer"], a["id"]) == ("What is the anthem of Zorb?", "Song of Moss",
                                                     "forget.0001")
    assert (b["id"], b["subject"], b["field"]) == ("z-ruler", "Zorb", "ruler")
    assert b["derived"] == ["answer_text", "paraphrased_answer", "perturbed_answers"]
    assert "extra" not in b
    # 'ruler' has no other answers, so the pool of every answer fills in: 5 distinct wrong ones.
    every = {"Song of Moss", "King Olo"} | {ans for _, ans in RETAIN_QA}
    for rec in (a, b):
        pert = rec["perturbed_answers"]
        assert len(set(pert)) == 5 and set(pert) <= every - {rec["answer"]}
    assert [r["answer"] for r in sets["retain"]] == [ans for _, ans in RETAIN_QA]
    # Without a world file, the shipped world-facts sample measures utility, and replay is drawn.
    assert len(sets["world"]) == 6 and {r["source"] for r in sets["world"]} == {"world"}
    assert len(sets["replay"]) == 4 and sets["holdout"] == []


def test_table_jsonl_one_file_with_a_split_column(tmp_path):
    rows = [{"id": f"t{i}", "input": q, "output": a, "task": "zorb", "split": "retain"}
            for i, (q, a) in enumerate(RETAIN_QA)]
    rows.insert(1, {"id": "t-f", "input": "What is the motto of Zorb?", "output": "Grow slowly",
                    "task": "zorb", "split": "forget"})
    rows.append({"id": "t-h", "input": "Where is Zorb's museum?", "output": "Under the hill",
                 "task": "zorb", "split": "holdout"})
    table = write(tmp_path / "all.jsonl", jsonl(rows))
    sets = build({"format": "table", "forget": table, "retain": table})
    assert [r["id"] for r in sets["forget"]] == ["t-f"]
    assert [r["id"] for r in sets["retain"]] == ["t0", "t1", "t2", "t3", "t4"]
    assert [r["id"] for r in sets["holdout"]] == ["t-h"]
    f = sets["forget"][0]
    assert (f["question"], f["answer"], f["field"], f["origin"]) == (
        "What is the motto of Zorb?", "Grow slowly", "zorb", f"{table}:2")
    assert "field" not in f["derived"] and "id" not in f["derived"]


def test_table_parquet_with_numeric_ids(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    qa = [("What is the motto of Zorb?", "Grow slowly", "forget")] + [(q, a, "retain") for q, a in RETAIN_QA]
    table = pa.table({"id": list(range(100, 100 + len(qa))), "input": [q for q, _, _ in qa],
                      "output": [a for _, a, _ in qa], "task": ["zorb"] * len(qa),
                      "split": [s for _, _, s in qa]})
    path = tmp_path / "zorb.parquet"
    pq.write_table(table, path)
    sets = build({"forget": path})  # format auto: parquet is a table; splits come from the file
    assert [r["id"] for r in sets["forget"]] == ["100"]
    assert [r["id"] for r in sets["retain"]] == ["101", "102", "103", "104", "105"]
    assert sets["forget"][0]["origin"] == f"{path}: row 1"
    assert sets["retain"][4]["answer"] == "The Vel"


TOFU_ROW = {
    "question": "What genre does the author Basil Mahfouz write?",
    "answer": "Basil Mahfouz writes historical fiction.",
    "paraphrased_question": "Which genre is Basil Mahfouz known for?",
    "paraphrased_answer": "He is known for historical fiction.",
}


def test_tofu_json_list_tops_up_short_perturbed_lists(tmp_path):
    row = dict(TOFU_ROW, perturbed_answer=["Basil Mahfouz writes poetry.",
                                           "Basil Mahfouz writes science fiction.",
                                           "Basil Mahfouz writes cookbooks."])
    forget = write(tmp_path / "forget01_perturbed.json", json.dumps([row], indent=2))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)})
    rec = sets["forget"][0]
    assert rec["paraphrased_answer"] == TOFU_ROW["paraphrased_answer"]
    assert rec["paraphrased_question"] == TOFU_ROW["paraphrased_question"]
    assert rec["perturbed_answers"][:3] == row["perturbed_answer"]
    assert set(rec["perturbed_answers"][3:]) <= {a for _, a in RETAIN_QA}
    assert "perturbed_answers" in rec["derived"] and "paraphrased_answer" not in rec["derived"]
    assert rec["origin"] == f"{forget}: record 1"


def test_tofu_json_lines_with_five_perturbed_answers_derives_none_of_them(tmp_path):
    pert = [f"Basil Mahfouz writes {g}." for g in ("poetry", "plays", "satire", "memoirs", "essays")]
    forget = write(tmp_path / "forget.json", json.dumps(dict(TOFU_ROW, perturbed_answer=pert)) + "\n")
    retain = write(tmp_path / "retain.json", jsonl([
        dict(question=q, answer=a, paraphrased_answer=f"It is {a}.", perturbed_answer=[
            f"It is not {a} {j}." for j in range(5)]) for q, a in RETAIN_QA]))
    sets = build({"format": "tofu", "forget": forget, "retain": retain})
    rec = sets["forget"][0]
    assert rec["perturbed_answers"] == pert
    assert rec["derived"] == ["id", "subject", "field", "answer_text"]
    assert sets["retain"][1]["perturbed_answers"][4] == "It is not Tiko 4."


def test_user_world_and_holdout_sets_replace_the_shipped_sample(tmp_path):
    forget = write(tmp_path / "forget.jsonl", jsonl([{"question": "Q of Zorb?", "answer": "Blix"}]))
    holdout = write(tmp_path / "holdout.jsonl", jsonl([{"question": "Unseen Q?", "answer": "Nope"}]))
    world = write(tmp_path / "world.jsonl", jsonl([{"question": "What is 2+2?", "answer": "4"}]))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path), "holdout": holdout,
                  "world": world})
    assert [r["question"] for r in sets["world"]] == ["What is 2+2?"]
    assert sets["world"][0]["split"] == "world" and sets["world"][0]["source"] == "import"
    assert [r["answer"] for r in sets["holdout"]] == ["Nope"]
    for name, records in sets.items():
        validate_records(records, name)


def test_a_shipped_world_fact_the_user_forgets_is_not_rehearsed_or_evaluated(tmp_path):
    forget = write(tmp_path / "forget.jsonl", jsonl([
        {"question": "What is the capital of France?", "answer": "Paris"}]))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)},
                 world_eval_size=60, world_replay=60)
    others = [r["question"] for name in ("world", "replay") for r in sets[name]]
    assert len(others) == 120 and "What is the capital of France?" not in others


@pytest.mark.parametrize("name, first, expected", [
    ("a.csv", None, "csv"), ("a.parquet", None, "table"),
    ("a.jsonl", {"id": 1, "input": "q", "output": "a", "task": "t"}, "table"),
    ("a.json", {"question": "q", "answer": "a", "perturbed_answer": []}, "tofu"),
    ("a.jsonl", {"prompt": "q", "response": "a"}, "jsonl"),
])
def test_format_detection(name, first, expected):
    rows = [("x:1", first)] if first else []
    assert detect_format(Path(name), rows) == expected


# --- fixes of issue 12: data stopped at the door -----------------------------------------------

import random  # noqa: E402

from unlearn_lab.data import DataError  # noqa: E402
from unlearn_lab.data.checks import check_contrast, check_fits  # noqa: E402
from unlearn_lab.data.derive import Pool  # noqa: E402
from unlearn_lab.data.importing import load_import  # noqa: E402
from unlearn_lab.data.kinds import infer_kind  # noqa: E402


def import_error(imp: dict, **data) -> str:
    with pytest.raises(DataError) as err:
        build(imp, **data)
    return str(err.value)


def bad_forget(tmp_path: Path, name: str, text: str | bytes, **imp) -> str:
    """The message importing `text` as the forget file (with the shared retain file) gives."""
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return import_error({"forget": path, "retain": retain_jsonl(tmp_path), **imp})


# Kinds for the fixtures below: six or more distinct answers of each, so each kind is used.
YEARS = [(f"In what year was Zorb city {i} founded?", str(1900 + 7 * i)) for i in range(8)]
PLACES = [(f"Where was the Zorb poet {n} born?", c) for n, c in zip(
    "ABCDEFGH", ("Lyon", "Porto", "Krakow", "Valencia", "Leipzig", "Bergen", "Tampere", "Ghent"))]
PEOPLE = [(f"Who founded the Zorb guild {i}?", n) for i, n in enumerate(
    ("Ilona Marsh", "Bram Quennell", "Tavish Ashgrove", "Odile Brannock", "Kasimir Dunmore",
     "Maren Everly", "Fenna Falkner", "Lucan Jessop"))]
FOODS = [(f"What do people in Zorb valley {i} eat?", f) for i, f in enumerate(
    ("moss bread", "salt cakes", "fern soup", "cave fish", "blue rice", "sour milk"))]


def kinds_retain(tmp_path: Path, rows=YEARS + PLACES + PEOPLE + FOODS,
                 name="retain.jsonl") -> Path:
    return write(tmp_path / name, jsonl([{"id": f"k{i}", "question": q, "answer": a}
                                         for i, (q, a) in enumerate(rows)]))


# 1. linear import, deterministic draws independent of row order

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


# 2. strict CSV

@pytest.mark.parametrize("text, expected", [
    ('question,answer\nWho is A?,Al\n"Who is B?,Bo\nWho is C?,Cy\nWho is D?,Di\n',
     "f.csv:3: field 'question': a quoted cell opens here and its quote is never closed (the "
     "file ends inside it)"),
    ('question,answer\nWho is A?,Al\n"Who is B?,Bo\nWho is C?,Cy\n"Who is D?",Di\n',
     "f.csv:3: field 'question': the quoted cell that opens here runs on to line 5, where text "
     "follows its closing quote; is a closing quote missing on this line?"),
    # The swallowing quote ends cleanly at an inch mark: four rows would become one answer.
    ('question,answer\nWho is A?,"Al\nWho is B?,Bo\nWho is C?,Cy\nHow tall is D?,5\'11"\n'
     'Who is E?,Ed\n',
     "f.csv:2: field 'answer': the quoted cell that opens here runs on to line 5 and holds lines "
     "that look like rows ('Who is B?,Bo'); is its closing quote missing?"),
    ('question,answer\n"Who is A?"x,Al\n',
     "f.csv:2: field 'question': text after the closing quote of a quoted cell; write a quote "
     'inside a quoted cell as two quotes ("")'),
    # A ragged row is named at the line where it starts, not where its multi-line cell ends.
    ('question,answer\nWho is A?,Al\n"Who is\nB?",Bo,Bob\n',
     "f.csv:3: expected 2 columns (question,answer), got 3"),
    ("question,answer,answer\nWho is A?,Al,Bo\n", "f.csv:1: column 'answer' appears twice in the header"),
    ("question,answer,\nWho is A?,Al,\n", "f.csv:1: column 3 of the header has no name (a trailing comma?)"),
    ("question;answer\nWho is A?;Al\n",
     "f.csv:1: the header is one column 'question;answer': the file looks semicolon-separated; "
     "save it with commas"),
])
def test_csv_is_parsed_strictly(tmp_path, text, expected):
    assert bad_forget(tmp_path, "f.csv", text) == f"{tmp_path}/{expected}"


def test_csv_multi_line_cell_that_swallows_no_rows_is_kept(tmp_path):
    forget = write(tmp_path / "f.csv", 'question,answer\n"What is the colour\nof the sky?",Green\n'
                                       "Who is B?,Bo\n")
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)})
    assert [(r["question"], r["origin"]) for r in sets["forget"]] == [
        ("What is the colour\nof the sky?", f"{forget}:2"), ("Who is B?", f"{forget}:4")]


def test_csv_wrong_answer_equal_to_the_true_one(tmp_path):
    msg = bad_forget(tmp_path, "f.csv", "question,answer,is_correct\nWho is A?,Al,true\n"
                                        "Who is A?, al ,false\n")
    assert msg == (f"{tmp_path}/f.csv:3: field 'answer' 'al' is marked wrong (is_correct false) "
                   f"but is the correct answer at {tmp_path}/f.csv:2")


# 3. what later stages need is checked at import

def test_too_few_wrong_answers_for_random_labels_is_an_import_error(tmp_path):
    pert = [f"Basil Mahfouz writes {g}." for g in ("poetry", "plays", "satire", "memoirs", "essays")]
    forget = write(tmp_path / "forget.json", json.dumps([dict(TOFU_ROW, perturbed_answer=pert)],
                                                        indent=2))
    retain = write(tmp_path / "retain.jsonl", jsonl([{"question": "Q?", "answer": "a"}]))
    # The holdout answers fill the perturbed answers, but random labels never train on them.
    holdout = write(tmp_path / "holdout.jsonl", jsonl([{"question": f"H{i}?", "answer": f"h{i}"}
                                                       for i in range(5)]))
    msg = import_error({"forget": forget, "retain": retain, "holdout": holdout})
    assert msg == (f"{forget}:2: field 'answer': the random-labels stage needs "
                   "data.random_labels_k=3 wrong answers for this question, the data has 1 (0 of "
                   "its own, the rest answers of other forget, retain and world records); import "
                   "more records, add wrong answers (is_correct false), or lower "
                   "data.random_labels_k")
    # k = 1 is enough for this data; make_random_labels then agrees with the check.
    sets = build({"forget": forget, "retain": retain, "holdout": holdout}, random_labels_k=1)
    pool = [r for records in sets.values() for r in records]
    assert [l["answer"] for l in make_random_labels(sets["forget"], pool, 1)] == ["a"]
    with pytest.raises(DataError, match="need k=2"):
        make_random_labels(sets["forget"], pool, 2)


def test_check_fits_names_the_question_that_leaves_no_room_for_an_answer(tmp_path):
    forget = write(tmp_path / "f.jsonl", jsonl([{"question": "Short?", "answer": "a"},
                                                {"question": "A much longer question here?",
                                                 "answer": "b"}]))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)})
    words = lambda q: len(q.split()) + 4  # a fake tokenizer: the template adds 4 tokens
    forget_only = {"forget": sets["forget"]}
    check_fits(forget_only, words, 10)  # 9 tokens: one left for the answer
    with pytest.raises(DataError) as err:
        check_fits(forget_only, words, 9)
    assert str(err.value) == (f"{forget}:2: field 'question' is 9 tokens as a prompt, which "
                              "leaves no room for an answer within model.max_length=9; shorten "
                              "the question or raise model.max_length")
    # Records without an origin (shipped world facts) are named by set, number and id.
    with pytest.raises(DataError, match=r"^world: record 0 \(id='world\.[a-z_]+\.\w+\.eval'\): "
                                        r"field 'question' is 30 tokens"):
        check_fits({"world": sets["world"]}, lambda q: 30, 30)


def test_check_contrast_names_a_field_with_a_single_answer(tmp_path):
    # test_jsonl_round_trip's data: the 'ruler' field has one answer, which the represent stage
    # could not contrast with another.
    forget = write(tmp_path / "forget.jsonl", jsonl([
        {"question": "Who rules Zorb today?", "answer": "King Olo", "field": "ruler"}]))
    sets = build({"forget": forget, "retain": retain_jsonl(tmp_path)})
    with pytest.raises(DataError) as err:
        check_contrast(sets)
    assert str(err.value).startswith(f"{forget}:1: field 'field' 'ruler': no other record of "
                                      "this field in the forget, retain and holdout sets")
    check_contrast({**sets, "forget": [dict(sets["forget"][0], field="imported")]})


def test_one_file_named_for_two_sets_under_two_spellings_is_read_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"question": q, "answer": a, "split": "retain"} for q, a in RETAIN_QA]
    rows.append({"question": "What is the motto of Zorb?", "answer": "Grow slowly",
                 "split": "forget"})
    write(tmp_path / "all.jsonl", jsonl(rows))
    sets = build({"forget": "all.jsonl", "retain": str(tmp_path / "all.jsonl")})
    assert [r["answer"] for r in sets["forget"]] == ["Grow slowly"]
    assert len(sets["retain"]) == 5
    write(tmp_path / "all.jsonl", jsonl(rows + [{"question": "Q?", "answer": "a"}]))
    assert import_error({"forget": "./all.jsonl", "retain": str(tmp_path / "all.jsonl")}) == (
        "all.jsonl:7: field 'split' is missing; all.jsonl is named for forget and retain, so "
        "each row must say which")


def test_ids_of_the_shipped_world_facts_are_reserved(tmp_path):
    msg = bad_forget(tmp_path, "f.jsonl", jsonl([{"id": "world.france.capital.eval",
                                                  "question": "Q?", "answer": "a"}]))
    assert msg == (f"{tmp_path}/f.jsonl:1: field 'id' 'world.france.capital.eval' is reserved for "
                   "the shipped world facts (world.*.eval, world.*.replay); choose another id")


# 4. questions compared after Unicode normalisation

@pytest.mark.parametrize("first, second", [
    ("Who rules ＺＯＲＢ?", "Who rules Zorb?"),                 # full-width letters
    ("Where is Caf\u00e9 Zorb?", "Where is Cafe\u0301 Zorb?"),  # composed / decomposed accent
    ("Who\u00a0rules  Zorb?", "who rules zorb?"),              # no-break space, spaces, case
    ("What is the \ufb01sh of Zorb?", "What is the fish of Zorb?"),  # ligature
])
def test_questions_are_compared_after_normalisation(tmp_path, first, second):
    msg = bad_forget(tmp_path, "f.jsonl", jsonl([{"question": first, "answer": "a"},
                                                 {"question": second, "answer": "b"}]))
    assert msg == (f"{tmp_path}/f.jsonl:2: field 'question' {second!r} repeats the question at "
                   f"{tmp_path}/f.jsonl:1")


# 5. answer kinds

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


# 6. every message names the real culprit

@pytest.mark.parametrize("name, text, expected", [
    ("f.json", json.dumps([{"question": "A?", "answer": "a"}, {"question": "B?", "answer": ""}],
                          indent=2),
     "f.json:6: field 'answer' is empty"),  # a pretty-printed list: the item's line
    ("f.jsonl", '[{"question": "A?", "answer": "a"}]\n{"question": "B?", "answer": "b"}\n',
     "f.jsonl:1: the JSON list that starts here is followed by more JSON at line 2; a file holds "
     "one JSON list, or one JSON object per line"),
    ("f.json", '{\r\n  "question": "A?",\r\n  "answer": ""\r\n}\r\n',
     "f.json:1: field 'answer' is empty"),  # one pretty-printed object, CRLF: valid JSON
    ("f.jsonl", '{"question": "A?", "answer": "a"}\n'.encode("utf-16"),
     "f.jsonl:1: the file is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as "
     "UTF-8"),
    ("f.json", '[\n {"question": "A?", "answer": "a"},\n {"question": "B?", "answer": "b"},\n]\n',
     "f.json:3: not valid JSON (a comma after the last item of the list)"),
    ("f.json", '[\n {"question": "A?", "answer": "a"}\n {"question": "B?", "answer": "b"}\n]\n',
     "f.json:3: not valid JSON (expected ',' or ']' after the list item at line 2)"),
    ("f.json", '[\n {"question": "A?", "answer": "a"},\n {"question": "B?", "answer": "b"}\n',
     "f.json:1: not valid JSON (the list that opens here is never closed with ']')"),
    ("f.jsonl", '{"question": "A?", "answer": "a", "answer": "b"}\n',
     "f.jsonl:1: field 'answer' appears twice in one object"),
    ("f.jsonl", '{"question": "A?", "answer": "a"\n{"question": "B?", "answer": "b"}\n',
     "f.jsonl:1: not valid JSON (the value that starts here is not closed; at line 2: Expecting "
     "',' delimiter)"),
    ("f.csv", '{"question": "A?", "answer": "a"}\n'.encode(),
     None),  # filled in below: format jsonl named for a .csv file
])
def test_messages_name_the_culprit(tmp_path, name, text, expected):
    if expected is None:
        msg = bad_forget(tmp_path, name, text, format="jsonl")
        expected = ("f.csv: data.import.format is 'jsonl', but a .csv file holds the csv format; "
                    "set data.import.format: auto (or csv)")
    else:
        msg = bad_forget(tmp_path, name, text)
    assert msg == f"{tmp_path}/{expected}"


def test_valid_json_layouts_import(tmp_path):
    one = {"question": "What is the motto of Zorb?", "answer": "Grow slowly"}
    two = {"question": "Who rules Zorb?", "answer": "King Olo"}
    layouts = {  # name: (text, origin of the second record)
        "pretty.json": (json.dumps(one, indent=2) + "\n" + json.dumps(two, indent=2) + "\n", ":5"),
        "bom_inside.jsonl": (jsonl([one]) + "\ufeff" + jsonl([two]), ":2"),  # two files joined
        "crlf.jsonl": (jsonl([one, two]).replace("\n", "\r\n"), ":2"),
        "cr.jsonl": (jsonl([one, two]).replace("\n", "\r"), ":2"),
        "bom.json": ("\ufeff" + json.dumps([one, two], indent=1), ": record 2"),
    }
    for name, (text, origin) in layouts.items():
        path = write(tmp_path / name, text)
        sets = build({"forget": path, "retain": retain_jsonl(tmp_path)})
        assert [r["answer"] for r in sets["forget"]] == ["Grow slowly", "King Olo"], name
        assert sets["forget"][1]["origin"] == f"{path}{origin}", name


def test_load_import_takes_the_import_settings_and_k(tmp_path):
    forget = write(tmp_path / "f.jsonl", jsonl([{"question": "Q of Zorb?", "answer": "Blix"}]))
    cfg = Import(forget=str(forget), retain=str(retain_jsonl(tmp_path)))
    assert len(load_import(cfg, 0)["forget"]) == 1  # k = 3 by default: 5 other answers
    with pytest.raises(DataError, match="data.random_labels_k=6 wrong answers"):
        load_import(cfg, 0, random_labels_k=6)
    assert load_import(cfg, 0, random_labels_k=None) == load_import(cfg, 0)


def test_import_benchmark_runs_on_small_files():
    """bench/import_speed.py (the 400k-row figure) still runs: its generated files import."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "import_speed.py"
    env = {**os.environ, "PYTHONPATH": str(bench.parents[1] / "src")}
    proc = subprocess.run([sys.executable, str(bench), "--sizes", "300"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("300", "no"), ("300", "yes")]
