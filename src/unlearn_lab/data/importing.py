"""Bring your own data (`data.benchmark: import`): read user files into the project's records.

Formats (`data.import.format`, or `auto` to pick one per file from its suffix and first row):
- csv:   `question,answer[,is_correct]`; a row with is_correct false is a known-wrong answer to
         the question of a correct row in the same file, never a training fact.
- jsonl: one object per line with `question`/`answer` (or `prompt`/`response`).
- table: parquet or JSON lines with `id,input,output,task[,split]`.
- tofu:  TOFU's `question, answer, paraphrased_answer, perturbed_answer[]` (optional
         `paraphrased_question`), as JSON lines or one JSON list.
Every format may also carry the record's own optional fields (id, subject, field, answer_text,
paraphrased_answer, perturbed_answers, correlated, split). A row's `split` sends it to that set,
so one file with a split column can hold every set. Whatever the data lacks is derived
(derive.py) and listed in the record's `derived` field.
Every error names the file, the line (or row / record number) and the field.

What later stages need from the data is checked here, so a bad file stops at the door and not
hours later: every question once across the sets (after normalisation), ids unique and none of
the shipped world facts' reserved ids, five perturbed answers per record, and enough wrong
answers for the random-labels stage (`random_labels_k`). What needs the tokenizer (the
question fits model.max_length) or the represent stage is checked by checks.py.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..settings import Import
from .derive import finish_records
from .random_labels import label_shortfalls
from .readers import TABLE_SUFFIXES, Row, read_csv_rows, read_json_rows, read_parquet_rows
from .records import DataError, _norm
from .shapes import check_container, check_question_records, check_text_kind

IMPORT_SETS = ("forget", "retain", "holdout", "world")

# Record field -> the names it may have in the data, the preferred one first.
ALIASES = {
    "id": ("id",),
    "subject": ("subject",),
    "field": ("field", "task"),
    "question": ("question", "prompt", "input"),
    "answer": ("answer", "response", "output"),
    "answer_text": ("answer_text",),
    "paraphrased_answer": ("paraphrased_answer",),
    "paraphrased_question": ("paraphrased_question",),
}
LIST_ALIASES = ("perturbed_answers", "perturbed_answer")
# Fields each format must have, with the names it must have them under.
REQUIRED = {
    "csv": {"question": ("question",), "answer": ("answer",)},
    "jsonl": {"question": ("question", "prompt"), "answer": ("answer", "response")},
    "tofu": {"question": ("question",), "answer": ("answer",)},
    "table": {"id": ("id",), "question": ("input",), "answer": ("output",), "field": ("task",)},
}
# CSV has a fixed header, so an unknown column is a typo worth an error (is_corect ...).
CSV_COLUMNS = ("question", "answer", "is_correct", "id", "subject", "field", "split",
               "answer_text", "paraphrased_answer", "correlated")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")
# Ids of the shipped world facts the import benchmark adds (world.py): never a user record's.
_RESERVED_ID = re.compile(r"world\..+\.(?:eval|replay)")


def detect_format(path: Path, rows: list[Row] | None) -> str:
    """csv / table by suffix; for JSON, the keys of the first row decide."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in TABLE_SUFFIXES:
        return "table"
    first = rows[0][1] if rows else {}
    if "input" in first and "output" in first:
        return "table"
    if "perturbed_answer" in first or "paraphrased_answer" in first:
        return "tofu"
    return "jsonl"


def _read(path: Path, fmt: str) -> tuple[str, list[Row]]:
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        if fmt not in ("auto", "table"):
            raise DataError(f"{path}: a parquet file holds the table format, not {fmt!r}")
        return "table", read_parquet_rows(path)
    if fmt == "csv" or (fmt == "auto" and suffix == ".csv"):
        if suffix in JSON_SUFFIXES:
            raise DataError(f"{path}: data.import.format is 'csv', but a {suffix} file holds "
                            "JSON; set data.import.format: auto")
        check_text_kind(path, "csv")
        return "csv", _csv_rows(path)
    if suffix == ".csv":
        raise DataError(f"{path}: data.import.format is {fmt!r}, but a .csv file holds the csv "
                        "format; set data.import.format: auto (or csv)")
    check_text_kind(path, "json", "; texts (documents) go in data.documents.forget / retain / holdout")
    rows = read_json_rows(path)
    check_container(path, rows)
    chosen = fmt != "auto"
    fmt = detect_format(path, rows) if fmt == "auto" else fmt
    check_question_records(path, rows, fmt, chosen)
    return fmt, rows


def _parse_bool(where: str, column: str, text) -> bool:
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise DataError(f"{where}: field '{column}' must be true or false, got {text!r}")


def _csv_rows(path: Path) -> list[Row]:
    """CSV rows with their wrong answers folded into the correct row of the same question."""
    header, rows = read_csv_rows(path)
    for column in header:
        if column not in CSV_COLUMNS:
            raise DataError(f"{path}:1: unknown column {column!r}; known: {', '.join(CSV_COLUMNS)}")
    for column in ("question", "answer"):
        if column not in header:
            raise DataError(f"{path}:1: column '{column}' is missing (header: {','.join(header)})")
    correct: list[Row] = []
    wrong: list[Row] = []
    for where, row, _ in rows:
        row = {k: v for k, v in row.items() if v != "" or k in ("question", "answer")}
        if "correlated" in row:
            row["correlated"] = _parse_bool(where, "correlated", row["correlated"])
        is_correct = _parse_bool(where, "is_correct", row.pop("is_correct", "true"))
        (correct if is_correct else wrong).append(Row(where, row))
    by_question: dict[str, Row] = {}
    for found in correct:
        by_question.setdefault(_norm(found.fields.get("question", "")), found)
    for where, row, _ in wrong:
        if not row["question"].strip():
            raise DataError(f"{where}: field 'question' is empty")
        target = by_question.get(_norm(row["question"]))
        if target is None:
            raise DataError(f"{where}: field 'question': a wrong answer (is_correct false) to a "
                            "question that has no correct row in this file")
        if not row["answer"].strip():
            raise DataError(f"{where}: field 'answer' is empty")
        if _norm(row["answer"]) == _norm(target.fields.get("answer", "")):
            raise DataError(f"{where}: field 'answer' {row['answer']!r} is marked wrong "
                            f"(is_correct false) but is the correct answer at {target.where}")
        target.fields.setdefault("wrong_answers", []).append(row["answer"])
    return correct


def _pick(row: dict, names: tuple[str, ...]):
    """(name, value) of the first of `names` the row has with a non-null value, else None."""
    for name in names:
        if row.get(name) is not None:
            return name, row[name]
    return None


def to_draft(where: str, row: dict, fmt: str, origin: str | None = None) -> dict:
    """A partial record from one row: text fields checked for type and emptiness. `where`
    locates the row in messages; `origin` (default: where) is what the record keeps."""
    draft: dict = {"origin": origin or where, "at": where}
    for field, names in ALIASES.items():
        found = _pick(row, REQUIRED[fmt].get(field, names))
        if found is None:
            if field in REQUIRED[fmt]:
                alts = REQUIRED[fmt][field]
                extra = f" (or {', '.join(repr(a) for a in alts[1:])})" if len(alts) > 1 else ""
                raise DataError(f"{where}: field '{alts[0]}'{extra} is missing")
            continue
        name, value = found
        if field == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # parquet and JSON ids are often numbers
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
        if not value.strip():
            raise DataError(f"{where}: field '{name}' is empty")
        if field == "id" and _RESERVED_ID.fullmatch(value.strip()):
            raise DataError(f"{where}: field 'id' {value.strip()!r} is reserved for the shipped "
                            "world facts (world.*.eval, world.*.replay); choose another id")
        draft[field] = value.strip()
    found = _pick(row, LIST_ALIASES)
    if found is not None:
        name, value = found
        if not isinstance(value, list):
            raise DataError(f"{where}: field '{name}' must be a list of strings, "
                            f"got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise DataError(f"{where}: field '{name}' item {i + 1} must be a non-empty "
                                f"string, got {item!r}")
        draft["perturbed_answers"] = [v.strip() for v in value]
    if "wrong_answers" in row:  # folded in from CSV rows with is_correct false
        draft["wrong_answers"] = list(row["wrong_answers"])
    if row.get("correlated") is not None:
        if not isinstance(row["correlated"], bool):
            raise DataError(f"{where}: field 'correlated' must be true or false, "
                            f"got {row['correlated']!r}")
        draft["correlated"] = row["correlated"]
    split = row.get("split")
    if split is not None:
        if not isinstance(split, str) or split.strip() not in IMPORT_SETS:
            raise DataError(f"{where}: field 'split' must be one of {', '.join(IMPORT_SETS)}, "
                            f"got {split!r}")
        draft["split"] = split.strip()
    return draft


def _same_file_key(path_text: str) -> str:
    """One key for every spelling of a path (./a.csv, a.csv, /abs/a.csv, a symlink to it)."""
    try:
        return str(Path(path_text).resolve())
    except (OSError, RuntimeError):
        return os.path.normpath(path_text)


def load_import(cfg: Import, seed: int, *, random_labels_k: int | None = 3) -> dict[str, list[dict]]:
    """{forget, retain, holdout, world}: finished, checked records from the configured files.

    A file named for several sets is read once; each of its rows then needs a `split`.
    `random_labels_k` (params data.random_labels_k): each forget record must have that many
    wrong answers for the random-labels stage, which draws them from the sets made here
    (None: not checked).
    """
    files: dict[str, tuple[str, list[str]]] = {}
    for name in IMPORT_SETS:
        if getattr(cfg, name):
            key = _same_file_key(getattr(cfg, name))
            files.setdefault(key, (os.path.normpath(getattr(cfg, name)), []))[1].append(name)
    drafts: dict[str, list[dict]] = {name: [] for name in IMPORT_SETS}
    for path_text, listed in files.values():
        path = Path(path_text)
        fmt, rows = _read(path, cfg.format)
        for i, (where, row, origin) in enumerate(rows):
            rows[i] = None  # the parsed row is dropped once its draft is made
            draft = to_draft(where, row, fmt, origin)
            target = draft.pop("split", None)
            if target is None:
                if len(listed) > 1:
                    raise DataError(f"{where}: field 'split' is missing; {path} is named for "
                                    f"{' and '.join(listed)}, so each row must say which")
                target = listed[0]
            drafts[target].append(draft)
        del rows
    for name in ("forget", "retain"):
        if not drafts[name]:
            source = getattr(cfg, name) or cfg.forget
            raise DataError(f"{source}: the {name} set is empty (no rows for it in "
                            f"{', '.join(p for p, _ in files.values())})")
    if cfg.world and not drafts["world"]:
        raise DataError(f"{cfg.world}: the world set is empty")
    locations: dict[str, str] = {}
    sets = finish_records(drafts, seed, cfg.max_chars, cfg.on_long, locations)
    if random_labels_k is not None:
        _check_random_labels(sets, random_labels_k, locations)
    return sets


def _check_random_labels(sets: dict[str, list[dict]], k: int, locations: dict[str, str]) -> None:
    """The random-labels stage's own rule (random_labels.py), run now: it draws from every set
    but holdout (and the shipped world facts, whose fields are capital and currency, which this
    check does not count on)."""
    pool = [r for name in IMPORT_SETS for r in sets[name]]
    for rec, available in label_shortfalls(sets["forget"], pool, k):
        given = len(rec.get("wrong_answers", []))
        where = locations.get(rec["id"], rec["origin"])
        raise DataError(
            f"{where}: field 'answer': the random-labels stage needs "
            f"data.random_labels_k={k} wrong answers for this question, the data has "
            f"{available} ({given} of its own, the rest answers of other forget, retain and "
            "world records); import more records, add wrong answers (is_correct false), or "
            "lower data.random_labels_k")
