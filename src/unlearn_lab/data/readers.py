"""Read user data files into rows, each tagged with where it came from ("file:line").

Only parsing happens here: a file that is not UTF-8, not valid JSON or CSV, or not a table is
reported with its file and line (or row) number. What the rows mean is importing.py's business.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .records import DataError

# One parsed row: (where, fields) with where like "data/raw/import/forget.csv:3".
Row = tuple[str, dict]

TABLE_SUFFIXES = (".parquet", ".pq")


def read_text(path: Path) -> str:
    """The file's text; DataError names the line and column of the first byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        # utf-8-sig: spreadsheet programs start CSV exports with a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                        f"{column}); save the file as UTF-8") from None


def read_csv_rows(path: Path) -> tuple[list[str], list[Row]]:
    """(header, rows); every row has exactly the header's columns, cells stripped."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected a header line)")
        header = [h.strip() for h in header]
        rows: list[Row] = []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise DataError(f"{path}:{line}: expected {len(header)} columns "
                                f"({','.join(header)}), got {len(cells)}")
            rows.append((f"{path}:{line}", {h: c.strip() for h, c in zip(header, cells)}))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    return header, rows


def read_json_rows(path: Path) -> list[Row]:
    """Objects from a JSON-lines file, or from a JSON list (TOFU ships both)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        rows = [(f"{path}: record {i + 1}", item) for i, item in enumerate(items)]
    else:
        rows = []
        # split on \n only: str.splitlines() would also break at U+2028, which JSON strings may hold.
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    for where, item in rows:
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return rows


def read_parquet_rows(path: Path) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs the package pyarrow "
                        "(pip install pyarrow), or convert the file to JSON lines") from None
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    return [(f"{path}: row {i + 1}", row) for i, row in enumerate(table.to_pylist())]
