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
"""
from __future__ import annotations

import os
from pathlib import Path

from ..settings import Import
from .derive import finish_records
from .readers import TABLE_SUFFIXES, Row, read_csv_rows, read_json_rows, read_parquet_rows
from .records import DataError, _norm

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
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")


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
    if fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv"):
        return "csv", _csv_rows(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        if fmt not in ("auto", "table"):
            raise DataError(f"{path}: a parquet file holds the table format, not {fmt!r}")
        return "table", read_parquet_rows(path)
    rows = read_json_rows(path)
    return (detect_format(path, rows) if fmt == "auto" else fmt), rows


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
    for where, row in rows:
        row = {k: v for k, v in row.items() if v != "" or k in ("question", "answer")}
        if "correlated" in row:
            row["correlated"] = _parse_bool(where, "correlated", row["correlated"])
        is_correct = _parse_bool(where, "is_correct", row.pop("is_correct", "true"))
        (correct if is_correct else wrong).append((where, row))
    by_question: dict[str, dict] = {}
    for where, row in correct:
        by_question.setdefault(_norm(row.get("question", "")), row)
    for where, row in wrong:
        if not row["question"].strip():
            raise DataError(f"{where}: field 'question' is empty")
        target = by_question.get(_norm(row["question"]))
        if target is None:
            raise DataError(f"{where}: field 'question': a wrong answer (is_correct false) to a "
                            "question that has no correct row in this file")
        if not row["answer"].strip():
            raise DataError(f"{where}: field 'answer' is empty")
        target.setdefault("wrong_answers", []).append(row["answer"])
    return correct


def _pick(row: dict, names: tuple[str, ...]):
    """(name, value) of the first of `names` the row has with a non-null value, else None."""
    for name in names:
        if row.get(name) is not None:
            return name, row[name]
    return None


def to_draft(where: str, row: dict, fmt: str) -> dict:
    """A partial record from one row: text fields checked for type and emptiness."""
    draft: dict = {"origin": where}
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


def load_import(cfg: Import, seed: int) -> dict[str, list[dict]]:
    """{forget, retain, holdout, world}: finished, checked records from the configured files.

    A file named for several sets is read once; each of its rows then needs a `split`.
    """
    files: dict[str, list[str]] = {}
    for name in IMPORT_SETS:
        if getattr(cfg, name):
            files.setdefault(os.path.normpath(getattr(cfg, name)), []).append(name)
    drafts: dict[str, list[dict]] = {name: [] for name in IMPORT_SETS}
    for path_text, listed in files.items():
        path = Path(path_text)
        fmt, rows = _read(path, cfg.format)
        for where, row in rows:
            draft = to_draft(where, row, fmt)
            target = draft.pop("split", None)
            if target is None:
                if len(listed) > 1:
                    raise DataError(f"{where}: field 'split' is missing; {path} is named for "
                                    f"{' and '.join(listed)}, so each row must say which")
                target = listed[0]
            drafts[target].append(draft)
    for name in ("forget", "retain"):
        if not drafts[name]:
            source = getattr(cfg, name) or cfg.forget
            raise DataError(f"{source}: the {name} set is empty (no rows for it in "
                            f"{', '.join(files)})")
    if cfg.world and not drafts["world"]:
        raise DataError(f"{cfg.world}: the world set is empty")
    return finish_records(drafts, seed, cfg.max_chars, cfg.on_long)
