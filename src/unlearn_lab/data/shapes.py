"""Files of a recognisable but unexpected shape: one line "file: found X, expected Y" before the
parsing or the field checks would report a symptom of it (a JSON error at line 1, a missing
`answer` field, an unknown CSV column).

Recognised: parquet, CSV and JSON text where another of them is expected, plain text where JSON
records are, one JSON object holding the records (under a key, or as columns of lists), and
records of another shape than expected: documents (`text`), MUSE's verbatim-memorisation
records (`prompt`, `gt`), TOFU records, table records and question records.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from .records import DataError

QUESTION_KEYS = ("question", "prompt", "input")
ANSWER_KEYS = ("answer", "response", "output")
# What each import format needs (importing.REQUIRED, as the user writes the keys).
FORMAT_KEYS = {"csv": "question, answer", "jsonl": "question (or prompt), answer (or response)",
               "tofu": "question, answer, paraphrased_answer, perturbed_answer",
               "table": "id, input, output, task"}
_HEADER_CELL = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]*$")


def kind_of_record(fields: dict) -> str | None:
    """The known shape of one record, in words; None when it has none of the known keys."""
    keys = set(fields)
    if {"prompt", "gt"} <= keys:
        return "MUSE verbatim-memorisation records"
    if "text" in keys and not keys & set(QUESTION_KEYS):
        return "documents"
    if "input" in keys and "output" in keys:
        return "table records"
    if "perturbed_answer" in keys or "paraphrased_answer" in keys:
        return "TOFU records"
    if keys & set(QUESTION_KEYS) and keys & set(ANSWER_KEYS):
        return "question records"
    return None


def _keys(fields: dict) -> str:
    return "keys " + ", ".join(list(fields)[:6]) + (", ..." if len(fields) > 6 else "")


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""  # missing or unreadable: the reader names that problem itself


def check_text_kind(path: Path, expected: str, hint: str = "") -> None:
    """DataError when a file that should hold `expected` ("json" or "csv") holds parquet, CSV,
    JSON or plain text instead; `hint` follows the plain-text message (where texts belong)."""
    head = _head(path)
    if head.startswith(b"PAR1"):
        raise DataError(f"{path}: found a parquet file, expected {expected.upper()} text; name it .parquet")
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        return  # not UTF-8: read_text names the encoding
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            return  # a byte that is not UTF-8: read_text names its line and column
        text = head[:exc.start].decode("utf-8-sig")  # a character cut at the end of the head
    text = text.lstrip("\ufeff \t\r\n")
    if not text:
        return
    first_line = text.splitlines()[0]
    if expected == "csv":
        if text[0] in "{[":
            raise DataError(f"{path}: found JSON, expected CSV with a header line; name the file .jsonl "
                            f"(or set data.import.format: auto)")
        return
    if text[0] in "{[":
        return
    cells = next(csv.reader([first_line]), [])
    if len(cells) > 1 and all(_HEADER_CELL.match(c.strip()) for c in cells):
        raise DataError(f"{path}: found CSV (header {first_line.strip()[:60]!r}), expected JSON records; "
                        f"name the file .csv (or set data.import.format: csv)")
    raise DataError(f"{path}: found plain text ({first_line.strip()[:40]!r} ...), expected JSON records "
                    f"(one object per line, or a list of objects){hint}")


def check_container(path: Path, rows: list) -> None:
    """DataError when the file is one JSON object that holds the records instead of being them:
    a list of records under a key, or columns of lists (pandas' orient=columns / list)."""
    if len(rows) != 1:
        return
    fields = rows[0][1]
    if kind_of_record(fields) is None:
        for key, value in fields.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                raise DataError(f"{path}: found one JSON object whose {key!r} holds {len(value)} records, expected "
                                "the records themselves (one object per line, or a JSON list of objects)")
    lists = [k for k, v in fields.items() if isinstance(v, list) and k in QUESTION_KEYS + ANSWER_KEYS + ("text",)]
    if lists:
        n = len(fields[lists[0]])
        raise DataError(f"{path}: found one JSON object of columns ({', '.join(repr(k) for k in lists)} each a list "
                        f"of {n} values), expected one object per record (one per line, or a JSON list of objects)")


def check_question_records(path: Path, rows: list, fmt: str, chosen: bool) -> None:
    """DataError when the first record of a question file (`data.import.*`) is of another
    shape than the format read (`fmt`; `chosen`: set in data.import.format, not detected)."""
    if not rows:
        return
    fields = rows[0][1]
    kind = kind_of_record(fields)
    if kind and kind.startswith(("documents", "MUSE verbatim")):
        raise DataError(f"{rows[0][0]}: found {kind} ({_keys(fields)}), expected question records ({FORMAT_KEYS[fmt]}); "
                        "texts go in data.documents.forget / retain / holdout")
    if not chosen or kind is None:
        return
    from .importing import REQUIRED  # (importing imports this module)

    missing = [names[0] for names in REQUIRED[fmt].values() if not any(n in fields for n in names)]
    if missing:
        raise DataError(f"{rows[0][0]}: found {kind} ({_keys(fields)}), expected {fmt} records ({FORMAT_KEYS[fmt]}) as "
                        f"data.import.format: {fmt} says; set data.import.format: auto")


def check_document_records(path: Path, rows: list, split: str) -> None:
    """DataError when a documents file (`data.documents.<split>`) holds question records."""
    if rows and "text" not in rows[0][1]:
        kind = kind_of_record(rows[0][1])
        if kind and not kind.startswith("documents"):
            raise DataError(f"{rows[0][0]}: found {kind} ({_keys(rows[0][1])}), expected documents (JSON lines with `text`) in "
                            f"data.documents.{split}; questions go in data.import.{split}")
