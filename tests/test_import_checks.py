"""Data stopped at the door: strict CSV, what later stages need, Unicode-normalised questions,
and messages that name the file, line and field of the real culprit."""
from __future__ import annotations

import json

import pytest

from unlearn_lab.data import DataError, make_random_labels
from unlearn_lab.data.checks import check_contrast, check_fits

from .import_fixtures import RETAIN_QA, TOFU_ROW, bad_forget, build, import_error, jsonl, retain_jsonl, write


# strict CSV

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


# what later stages need is checked at import

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


# questions compared after Unicode normalisation

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


# every message names the real culprit

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
