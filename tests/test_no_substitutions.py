"""No silent substitutions: every number finite and in its range, no setting the chosen benchmark
ignores or replaces, and files of another shape than expected named as such ("found X, expected
Y"), each in one line before any work."""
from __future__ import annotations

import copy
import json
import math
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from unlearn_lab.data import DataError
from unlearn_lab.data.documents import read_documents
from unlearn_lab.data.links import check_relearn_links
from unlearn_lab.errors import UserError
from unlearn_lab.training.methods import check_knobs
from unlearn_lab.robustness.relearning import relearn_documents_split
from unlearn_lab.settings import Settings, load_settings, parse_settings, read_yaml

from .import_fixtures import RETAIN_QA, build, jsonl, retain_jsonl, run_process_data, write

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_yaml(ROOT / "params.yaml")


def with_params(**dotted) -> dict:
    params = copy.deepcopy(PARAMS)
    for key, value in dotted.items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return params


def refusal(**dotted) -> str:
    with pytest.raises(UserError) as err:
        check_knobs(parse_settings(with_params(**dotted)))
    return str(err.value).removeprefix("params.yaml: ")


# ---------------------------------------------------------------- numbers: finite, in range

BAD_NUMBERS = [
    ("eval.bootstrap", 10**9, "eval.bootstrap: must be <= 100000, got 1000000000"),
    ("relearn.lr", math.inf, "relearn.lr: must be a finite number, got inf"),
    ("relearn.lr", math.nan, "relearn.lr: must be a finite number, got nan"),
    ("relearn.lr", 5.0, "relearn.lr: must be <= 1, got 5.0"),
    ("relearn.steps", 10**9, "relearn.steps: must be <= 1000000, got 1000000000"),
    ("lr", -math.inf, "lr: must be a finite number, got -inf"),
    ("finetune.lr", 1e3, "finetune.lr: must be <= 1, got 1000.0"),
    ("methods.npo.lr", math.inf, "methods.npo.lr: must be a finite number, got inf"),
    ("methods.npo.beta", math.nan, "methods.npo.beta: must be a finite number, got nan"),
    ("methods.rmu.steering_coeff", math.inf, "methods.rmu.steering_coeff: must be a finite number, got inf"),
    ("methods.gd.alpha", 1e9, "methods.gd.alpha: must be <= 1e+06, got 1000000000.0"),
    ("attack.temperature", math.nan, "attack.temperature: must be a finite number, got nan"),
    ("attack.samples", 10**6, "attack.samples: must be <= 1000, got 1000000"),
    ("unlearn.max_grad_norm", math.inf, "unlearn.max_grad_norm: must be a finite number, got inf"),
    ("unlearn.retain_loss_bound", math.inf, "unlearn.retain_loss_bound: must be a finite number, got inf"),
    ("data.forget_fraction", math.nan, "data.forget_fraction: must be a finite number, got nan"),
    ("seed", 2**32, "seed: must be <= 4294967295, got 4294967296"),
    ("finetune.epochs", 10**6, "finetune.epochs: must be <= 1000, got 1000000"),
    ("finetune.batch_size", 10**5, "finetune.batch_size: must be <= 4096, got 100000"),
    ("model.max_length", 10**7, "model.max_length: must be <= 131072, got 10000000"),
    ("eval.batch_size", 10**6, "eval.batch_size: must be auto or an integer from 1 to 4096, got 1000000"),
    ("eval.max_new_tokens", 10**6, "eval.max_new_tokens: must be <= 131072, got 1000000"),
    ("represent.probe_c", 1e300, "represent.probe_c: must be <= 1e+06, got 1e+300"),
    ("data.people", 10**8, "data.people: must be <= 1000000, got 100000000"),
    ("finetune.weight_decay", 3.0, "finetune.weight_decay: must be <= 1, got 3.0"),
    # a null where a value is required
    ("hardware.attn_implementation", None, "hardware.attn_implementation: must be one of auto, sdpa, eager, "
     "flash_attention_2, got None"),
    ("relearn.lr", None, "relearn.lr: must be a number, got None"),
    ("eval.bootstrap", None, "eval.bootstrap: must be an integer, got None"),
]


@pytest.mark.parametrize("key, value, expected", BAD_NUMBERS, ids=[f"{k}={v!r}" for k, v, _ in BAD_NUMBERS])
def test_numbers_are_finite_and_in_range(key, value, expected):
    assert refusal(**{key: value}) == expected


def test_an_infinite_number_in_the_yaml_file_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("relearn:\n  lr: .inf\n")
    with pytest.raises(UserError, match=r"^.*params.yaml: relearn.lr: must be a finite number, got inf$"):
        load_settings(path)


def test_the_largest_allowed_values_pass():
    settings = parse_settings(with_params(**{"eval.bootstrap": 100000, "relearn.lr": 1.0, "seed": 2**32 - 1}))
    assert (settings.eval.bootstrap, settings.relearn.lr, settings.seed) == (100000, 1.0, 2**32 - 1)


def _numbers(model: type[BaseModel], prefix: str = ""):
    """(dotted key, field) of every int or float field below `model`, sections included."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        args = typing.get_args(field.annotation) or (field.annotation,)
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _numbers(arg, key + ".")
        if any(a in (int, float) for a in args):
            yield key, field


# Numbers whose range a validator checks (tested above), not the field's own bounds.
VALIDATED = {"eval.batch_size", "eval.gen_batch_size", "quantize.bits"}


def test_every_number_of_every_section_has_an_upper_bound_its_default_keeps():
    found = list(_numbers(Settings))
    assert len(found) > 50  # the walk reaches every section
    for key, field in found:
        if key in VALIDATED:
            continue
        upper = [getattr(m, a) for m in field.metadata for a in ("le", "lt") if getattr(m, a, None) is not None]
        assert upper, f"{key} has no upper bound"
        if isinstance(field.default, (int, float)) and not isinstance(field.default, bool):
            assert field.default <= upper[0], key


def test_the_shipped_params_still_pass():
    check_knobs(parse_settings(PARAMS))


# ---------------------------------------------------------------- documents: nothing ignored or replaced

@pytest.mark.parametrize("data, expected", [
    ({"benchmark": "documents", "import": {"forget": "q.csv"}},
     "data.import.forget: benchmark documents reads question files only with your own documents "
     "(data.documents.forget, retain); set those, or remove data.import.forget to use the synthetic documents"),
    ({"benchmark": "documents", "import": {"world": "w.csv"}},
     "data.import.world: benchmark documents reads question files only with your own documents "
     "(data.documents.forget, retain); set those, or remove data.import.world to use the synthetic documents"),
    ({"benchmark": "documents", "documents": {"holdout": "h.jsonl"}},
     "data.documents.holdout: documents are read only together with your forget documents; set "
     "data.documents.forget too (without it the synthetic documents are used)"),
])
def test_files_the_documents_benchmark_would_ignore_are_refused(data, expected):
    with pytest.raises(UserError) as err:
        parse_settings({"data": data})
    assert str(err.value) == f"params.yaml: {expected}"


def test_retain_correlated_has_no_documents_form():
    expected = ("relearn.data: 'retain_correlated' has no documents form (documents have no correlated retain "
                "set); use retain, forget or auto with benchmark: documents")
    with pytest.raises(UserError) as err:
        parse_settings({"data": {"benchmark": "documents"}, "relearn": {"data": "retain_correlated"}})
    assert str(err.value) == f"params.yaml: {expected}"
    with pytest.raises(UserError, match="^relearn.data: 'retain_correlated' has no documents form"):
        relearn_documents_split([], {"forget": [], "retain": [{"id": "r", "subject": "R", "text": "t"}]},
                                "retain_correlated", 0)
    # questions keep it
    assert parse_settings({"relearn": {"data": "retain_correlated"}}).relearn.data == "retain_correlated"


DOCS = [{"id": f"forget.{i}", "subject": "", "text": f"t{i}", "source": f"f.jsonl:{i}"} for i in (1, 2, 3)]
LINKED = [dict(d, subject=s) for d, s in zip(DOCS, "ABA")]
QUESTIONS = [{"id": f"q{s}", "subject": s, "origin": f"q.csv:{n}"} for n, s in ((2, "A"), (3, "B"))]


@pytest.mark.parametrize("setting, docs, questions, expected", [
    ("forget", DOCS, QUESTIONS, "f.jsonl:1: field 'subject' is missing; relearn.data 'forget' trains"),
    ("auto", DOCS, QUESTIONS, "f.jsonl:1: field 'subject' is missing; relearn.data auto (which picks forget"),
    ("forget", LINKED, [*QUESTIONS, {"id": "qC", "subject": "C", "origin": "q.csv:4"}],
     "q.csv:4: field 'subject' 'C' is no forget document's subject; relearn.data 'forget' scores"),
    ("forget", LINKED, [dict(QUESTIONS[0], derived=["subject"])], "q.csv:2: field 'subject' is missing; relearn"),
])
def test_relearning_on_documents_needs_their_people(setting, docs, questions, expected):
    with pytest.raises(UserError) as err:
        check_relearn_links(setting, docs, questions)
    assert str(err.value).startswith(expected) and str(err.value).endswith("or set relearn.data: retain")
    assert "\n" not in str(err.value)


def test_relearning_links_pass_when_linked_or_not_split_by_person():
    check_relearn_links("forget", LINKED, QUESTIONS)
    check_relearn_links("retain", DOCS, QUESTIONS)  # the retain documents train: no split
    check_relearn_links("auto", DOCS[:1], QUESTIONS)  # one document: auto picks retain
    attack, scored, docs = relearn_documents_split(QUESTIONS, {"forget": LINKED}, "forget", 0)
    assert [d["subject"] for d in attack] == ["A", "A"] and [q["subject"] for q in scored] == ["B"]
    with pytest.raises(UserError, match="field 'subject' is missing"):
        relearn_documents_split(QUESTIONS, {"forget": DOCS}, "forget", 0)


def test_process_data_refuses_unlinked_documents_before_writing(tmp_path):
    shutil.copytree(ROOT / "data" / "raw", tmp_path / "data" / "raw")
    imp = tmp_path / "data" / "raw" / "import"
    imp.mkdir()
    write(imp / "forget.jsonl", jsonl([{"question": f"What did document {i} say?", "answer": f"Fact {i}"}
                                       for i in range(4)]))
    retain_jsonl(imp)
    write(imp / "docs_forget.jsonl", jsonl([{"text": f"Document {i} says Fact {i}."} for i in range(4)]))
    write(imp / "docs_retain.jsonl", jsonl([{"text": f"{q} {a}."} for q, a in RETAIN_QA]))
    proc = run_process_data(tmp_path, {
        "data.benchmark": "documents", "data.import.forget": "data/raw/import/forget.jsonl",
        "data.import.retain": "data/raw/import/retain.jsonl", "data.documents.forget": "data/raw/import/docs_forget.jsonl",
        "data.documents.retain": "data/raw/import/docs_retain.jsonl"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: data/raw/import/docs_forget.jsonl:1: field 'subject' is missing; "
                                  "relearn.data auto (which picks forget")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "processed").exists()


# ---------------------------------------------------------------- files of another shape

def import_error(tmp_path: Path, name: str, text: str, **imp) -> str:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        build({"forget": path, "retain": retain_jsonl(tmp_path), **imp})
    return str(err.value).replace(f"{tmp_path}/", "")


QA = [{"question": "A?", "answer": "a"}, {"question": "B?", "answer": "b"}]


@pytest.mark.parametrize("name, text, imp, expected", [
    ("f.json", json.dumps({"data": QA, "version": 1}), {},
     "f.json: found one JSON object whose 'data' holds 2 records, expected the records themselves"),
    ("f.json", json.dumps({"question": ["A?", "B?"], "answer": ["a", "b"]}), {},
     "f.json: found one JSON object of columns ('question', 'answer' each a list of 2 values), expected one "
     "object per record"),
    ("f.jsonl", "question,answer\nA?,a\n", {},
     "f.jsonl: found CSV (header 'question,answer'), expected JSON records; name the file .csv"),
    ("f.txt", "Basil Mahfouz was born in Cairo.\n", {},
     "f.txt: found plain text ('Basil Mahfouz was born in Cairo.' ...), expected JSON records"),
    ("f.csv", jsonl(QA), {}, "f.csv: found JSON, expected CSV with a header line; name the file .jsonl"),
    ("f.jsonl", jsonl([{"text": "A document."}]), {},
     "f.jsonl:1: found documents (keys text), expected question records"),
    ("f.jsonl", jsonl([{"prompt": "Once upon", "gt": "a time"}]), {},
     "f.jsonl:1: found MUSE verbatim-memorisation records (keys prompt, gt), expected question records"),
    ("f.jsonl", jsonl([{"id": "x", "input": "A?", "output": "a", "task": "t"}]), {"format": "tofu"},
     "f.jsonl:1: found table records (keys id, input, output, task), expected tofu records (question, answer, "
     "paraphrased_answer, perturbed_answer) as data.import.format: tofu says; set data.import.format: auto"),
    ("f.jsonl", jsonl(QA), {"format": "table"},
     "f.jsonl:1: found question records (keys question, answer), expected table records (id, input, output, "
     "task) as data.import.format: table says; set data.import.format: auto"),
])
def test_import_files_of_another_shape(tmp_path, name, text, imp, expected):
    assert import_error(tmp_path, name, text, **imp).startswith(expected)


def test_parquet_bytes_under_a_json_name(tmp_path):
    assert import_error(tmp_path, "f.jsonl", "PAR1\x00\x00") == (
        "f.jsonl: found a parquet file, expected JSON text; name it .parquet")


@pytest.mark.parametrize("make, expected", [
    (lambda p: write(p / "d.jsonl", jsonl(QA)),
     "d.jsonl:1: found question records (keys question, answer), expected documents (JSON lines with `text`) in "
     "data.documents.forget; questions go in data.import.forget"),
    (lambda p: write(p / "d.jsonl", json.dumps({"docs": [{"text": "a"}, {"text": "b"}]})),
     "d.jsonl: found one JSON object whose 'docs' holds 2 records"),
    (lambda p: (p / "folder").mkdir() or write(p / "folder" / "all.jsonl", jsonl([{"text": "a"}])).parent,
     "folder: found JSON file(s) (all.jsonl), expected .txt files in this folder"),
])
def test_document_files_of_another_shape(tmp_path, make, expected):
    with pytest.raises(DataError) as err:
        read_documents(make(tmp_path), "forget", 1000)
    assert str(err.value).replace(f"{tmp_path}/", "").startswith(expected)


def test_a_null_document_id_is_numbered(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"id": null, "text": "a"}\n{"id": "k", "text": "b"}\n')
    assert [d["id"] for d in read_documents(path, "forget", 100)] == ["forget.1", "forget.k"]
