"""Bring your own data: each import format round-trips hand-written fixtures into the schema."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_lab.data import DataError, make_random_labels, validate_records
from unlearn_lab.data.importing import detect_format, load_import
from unlearn_lab.settings import Import

from .import_fixtures import RETAIN_QA, TOFU_ROW, build, jsonl, retain_jsonl, write


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
