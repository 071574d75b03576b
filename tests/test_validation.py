"""Bad data: each gets one clear error that names the file, line or key, and field."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from unlearn_lab.data import DataError

from .import_fixtures import RETAIN_QA, build, jsonl, retain_jsonl, run_process_data, write

ROOT = Path(__file__).resolve().parents[1]


def import_error(tmp_path: Path, forget_name: str, forget_text: str | bytes, **imp) -> str:
    path = tmp_path / forget_name
    (path.write_bytes if isinstance(forget_text, bytes) else path.write_text)(forget_text)
    with pytest.raises(DataError) as err:
        build({"forget": path, "retain": retain_jsonl(tmp_path), **imp})
    return str(err.value)


def test_missing_field_names_file_line_and_field(tmp_path):
    msg = import_error(tmp_path, "f.jsonl", jsonl([{"question": "A?", "answer": "a"},
                                                   {"question": "B?", "respons": "b"}]))
    assert msg == f"{tmp_path}/f.jsonl:2: field 'answer' (or 'response') is missing"


def test_empty_field(tmp_path):
    msg = import_error(tmp_path, "f.csv", "question,answer\nA?,a\nB?,\n")
    assert msg == f"{tmp_path}/f.csv:3: field 'answer' is empty"


def test_wrong_type(tmp_path):
    msg = import_error(tmp_path, "f.jsonl", jsonl([{"question": "Born when?", "answer": 1969}]))
    assert msg == f"{tmp_path}/f.jsonl:1: field 'answer' must be a string, got int"


def test_wrong_type_in_a_perturbed_list(tmp_path):
    row = {"question": "Q?", "answer": "a", "perturbed_answer": ["b", None]}
    msg = import_error(tmp_path, "f.json", json.dumps([row]))
    assert msg == f"{tmp_path}/f.json: record 1: field 'perturbed_answer' item 2 must be a non-empty string, got None"


def test_duplicate_ids_name_both_places(tmp_path):
    rows = [{"id": "x1", "input": "A?", "output": "a", "task": "t"},
            {"id": "x1", "input": "B?", "output": "b", "task": "t"}]
    msg = import_error(tmp_path, "f.jsonl", jsonl(rows))  # auto: input/output make it a table
    assert msg == f"{tmp_path}/f.jsonl:2: field 'id' 'x1' is also the id of the record at {tmp_path}/f.jsonl:1"


def test_same_question_in_forget_and_retain(tmp_path):
    q = RETAIN_QA[2][0]
    msg = import_error(tmp_path, "f.csv", f"question,answer\n{q},Four\n")
    assert msg == (f"{tmp_path}/retain.jsonl:3: field 'question' {q!r} is also in the forget set at "
                   f"{tmp_path}/f.csv:2; a question belongs to one set")


def test_empty_forget_set(tmp_path):
    msg = import_error(tmp_path, "f.csv", "question,answer\n")
    assert msg == f"{tmp_path}/f.csv: the forget set is empty (no rows for it in {tmp_path}/f.csv, {tmp_path}/retain.jsonl)"


def test_non_utf8_text_names_line_and_column(tmp_path):
    msg = import_error(tmp_path, "f.csv", "question,answer\nA?,a\nB?,caf\xe9\n".encode("latin-1"))
    assert msg == f"{tmp_path}/f.csv:3: not UTF-8 text (byte 0xe9 at column 7); save the file as UTF-8"


def test_over_long_record_rejected(tmp_path):
    msg = import_error(tmp_path, "f.csv", "question,answer\nA?,a\nB?," + "x" * 30 + "\n",
                       max_chars=20, on_long="reject")
    assert msg == (f"{tmp_path}/f.csv:3: field 'answer' is 30 characters, over "
                   "data.import.max_chars=20 (data.import.on_long: truncate would cut it)")


def test_over_long_records_truncated_with_a_count(tmp_path, caplog):
    forget = write(tmp_path / "f.csv", "question,answer\nA?," + "x" * 30 + "\nB?," + "y" * 25 + "\nC?,z\n")
    retain = write(tmp_path / "r.jsonl", jsonl([{"question": f"R{i}?", "answer": f"r{i}"} for i in range(5)]))
    sets = build({"forget": forget, "retain": retain, "max_chars": 20})
    assert [r["answer"] for r in sets["forget"]] == ["x" * 20, "y" * 20, "z"]
    assert "cut 2 record(s) to max_chars=20" in caplog.text


@pytest.mark.parametrize("text, expected", [
    ('{"question": "A?", "answer": "a"}\n{"question": "B?", "answer": \n',
     "f.jsonl:2: not valid JSON (Expecting value)"),
    ('{"question": "A?", "answer": "a", "split": "train"}\n',
     "f.jsonl:1: field 'split' must be one of forget, retain, holdout, world, got 'train'"),
    ('["not an object"]', "f.jsonl: record 1: expected a JSON object, got str"),
])
def test_json_problems(tmp_path, text, expected):
    assert import_error(tmp_path, "f.jsonl", text) == f"{tmp_path}/{expected}"


@pytest.mark.parametrize("text, expected", [
    ("question,answer,is_correct\nA?,a,maybe\n", "f.csv:2: field 'is_correct' must be true or false, got 'maybe'"),
    ("question,answer,is_correct\nA?,a,true\nB?,b,false\n",
     "f.csv:3: field 'question': a wrong answer (is_correct false) to a question that has no correct row in this file"),
    ("question,anwser\nA?,a\n", "f.csv:1: unknown column 'anwser'; known: question, answer, is_correct, id, "
                                "subject, field, split, answer_text, paraphrased_answer, correlated"),
    ("question,answer\nA?,a,extra\n", "f.csv:2: expected 2 columns (question,answer), got 3"),
])
def test_csv_problems(tmp_path, text, expected):
    assert import_error(tmp_path, "f.csv", text) == f"{tmp_path}/{expected}"


def test_file_named_for_two_sets_needs_a_split_per_row(tmp_path):
    table = write(tmp_path / "all.jsonl", jsonl([
        {"id": "a", "input": "A?", "output": "a", "task": "t", "split": "forget"},
        {"id": "b", "input": "B?", "output": "b", "task": "t"}]))
    with pytest.raises(DataError) as err:
        build({"forget": table, "retain": table})
    assert str(err.value) == (f"{table}:2: field 'split' is missing; {table} is named for forget "
                              "and retain, so each row must say which")


def test_too_few_answers_for_perturbed_ones(tmp_path):
    forget = write(tmp_path / "f.jsonl", jsonl([{"question": "A?", "answer": "a"}]))
    retain = write(tmp_path / "r.jsonl", jsonl([{"question": "B?", "answer": "b"}]))
    with pytest.raises(DataError) as err:
        build({"forget": forget, "retain": retain})
    assert str(err.value).startswith(f"{forget}:1: field 'perturbed_answers': found 1 wrong answer(s), need 5")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path}/nope.csv: file not found$"):
        build({"forget": tmp_path / "nope.csv", "retain": retain_jsonl(tmp_path)})


def test_parquet_without_pyarrow_names_the_package(tmp_path, monkeypatch):
    # None in sys.modules makes `import pyarrow.parquet` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    msg = import_error(tmp_path, "f.parquet", b"PAR1")
    assert msg == (f"{tmp_path}/f.parquet: reading parquet needs the package pyarrow (pip install "
                   "pyarrow), or convert the file to JSON lines")


# --- a stage run: one line on stderr, exit code 2, no traceback -------------------------------

def test_stage_reports_bad_data_in_one_line_without_traceback(tmp_path):
    shutil.copytree(ROOT / "data" / "raw", tmp_path / "data" / "raw")
    imp = tmp_path / "data" / "raw" / "import"
    imp.mkdir()
    write(imp / "forget.csv", "question,answer\nA?,a\nB?,\n")
    retain_jsonl(imp)
    proc = run_process_data(tmp_path, {"data.benchmark": "import", "data.import.forget": "data/raw/import/forget.csv",
                                       "data.import.retain": "data/raw/import/retain.jsonl"})
    assert proc.returncode == 2
    assert proc.stderr == "error: data/raw/import/forget.csv:3: field 'answer' is empty\n"
    assert not (tmp_path / "data" / "processed").exists()
