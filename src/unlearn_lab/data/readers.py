"""Read user data files into rows, each tagged with where it came from ("file:line").

Only parsing happens here: a file that is not UTF-8, not valid JSON or CSV, or not a table is
reported with its file and the line where the problem starts (row number for parquet, which has
no lines). What the rows mean is importing.py's business.

CSV is read strictly: a quote that is never closed is reported at the line where its cell opens,
text after a closing quote is an error, a row with more or fewer cells than the header is an
error, and a quoted cell that runs over several lines which themselves look like rows is taken
for a missing closing quote (the rows it swallowed would otherwise become one long question).

JSON files may hold one object per line (JSON lines), one JSON list of objects, or objects
written over several lines (pretty-printed, one after another); a byte-order mark and CRLF or CR
line ends are accepted anywhere. Lines are reported for all three layouts.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import NamedTuple

from .records import DataError


class Row(NamedTuple):
    """One parsed row. `where` ("file:line") locates it in messages; `origin` is what the record
    keeps as its origin (the same, except in a JSON list: "file: record N")."""
    where: str
    fields: dict
    origin: str | None = None


TABLE_SUFFIXES = (".parquet", ".pq")

# Byte-order marks of encodings that are not UTF-8 (spreadsheet and Notepad "Unicode" exports).
_FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                 (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
# JSON white space, plus byte-order marks left where two files were joined.
_SPACE = re.compile(r"[ \t\n\r\ufeff]*")


def read_text(path: Path) -> str:
    """The file's text with "\\n" line ends for CR-only files; DataError names the line and
    column of the first byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    for bom, name in _FOREIGN_BOMS:
        if raw.startswith(bom):
            raise DataError(f"{path}:1: the file is {name} text (it starts with a {name} "
                            "byte-order mark); save it as UTF-8")
    try:
        # utf-8-sig: spreadsheet programs start CSV exports with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                        f"{column}); save the file as UTF-8") from None
    if "\r" in text and "\n" not in text:  # classic Mac line ends: count lines as the user sees
        text = text.replace("\r", "\n")
    return text


# ------------------------------------------------------------------------------------------ CSV

def _header_problem(path: Path, header: list[str]) -> str | None:
    if len(header) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab")):
            if sep in header[0]:
                return (f"{path}:1: the header is one column {header[0]!r}: the file looks "
                        f"{name}-separated; save it with commas")
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            return f"{path}:1: column {i} of the header has no name (a trailing comma?)"
        if name in seen:
            return f"{path}:1: column {name!r} appears twice in the header"
        seen.add(name)
    return None


def _scan_record(lines: list[str], first: int):
    """Walk one CSV record's physical lines (numbered from `first`) the way the csv module
    does; return (problem, line, cell index, opening line) for the first quoting problem, or
    None. Cell index and opening line belong to the quoted cell the problem is in."""
    cell, in_quote, closed, at_start = 0, False, False, True
    open_line = first
    for lineno, line in enumerate(lines, first):
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if in_quote:
                if c == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        i += 1  # an escaped quote ("")
                    else:
                        in_quote, closed = False, True
            elif closed:
                if c == ",":
                    cell, closed, at_start = cell + 1, False, True
                elif c not in "\r\n":
                    return "after", lineno, cell, open_line
            elif c == '"' and at_start:
                in_quote, open_line, at_start = True, lineno, False
            elif c == ",":
                cell, at_start = cell + 1, True
            elif c not in "\r\n":
                at_start = False
            i += 1
    if in_quote:
        return "open", first + len(lines) - 1, cell, open_line
    return None


def _cell_name(header: list[str], cell: int) -> str:
    return header[cell] if cell < len(header) else f"column {cell + 1}"


def _quote_error(path: Path, header: list[str], lines: list[str], first: int,
                 exc: Exception | None) -> DataError:
    found = _scan_record(lines, first)
    if found is None:  # not a quoting problem the scan knows: the csv module's words
        return DataError(f"{path}:{first}: not valid CSV ({exc})")
    problem, line, cell, opened = found
    name = _cell_name(header or [], cell)
    if problem == "open":
        end = "the file ends inside it" if exc is None or "end of data" in str(exc) else \
            f"it is still open at line {line} ({exc})"
        return DataError(f"{path}:{opened}: field '{name}': a quoted cell opens here and its "
                         f"quote is never closed ({end})")
    if opened < line:
        return DataError(f"{path}:{opened}: field '{name}': the quoted cell that opens here runs "
                         f"on to line {line}, where text follows its closing quote; is a closing "
                         "quote missing on this line?")
    return DataError(f"{path}:{line}: field '{name}': text after the closing quote of a quoted "
                     'cell; write a quote inside a quoted cell as two quotes ("")')


def _swallowed_rows(cells: list[str], header: list[str]) -> tuple[int, str] | None:
    """(cell index, a continuation line) when a multi-line cell holds lines that are rows of
    their own (as many cells as the header): the mark of a missing closing quote."""
    for i, cell in enumerate(cells):
        if "\n" not in cell and "\r" not in cell:
            continue
        for inner in cell.splitlines()[1:]:
            parts = next(csv.reader([inner]), [])
            if len(header) > 1 and len(parts) == len(header) and any(p.strip() for p in parts):
                return i, inner
    return None


def read_csv_rows(path: Path) -> tuple[list[str], list[Row]]:
    """(header, rows); every row has exactly the header's columns, cells stripped. A row is
    located at the line where it starts (a quoted cell may span lines)."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)

    def record_lines(first: int, last: int) -> list[str]:
        return list(io.StringIO(text, newline=""))[first - 1:last]

    header: list[str] = []
    last = 0
    try:
        first_row = next(reader, None)
        if first_row is None:
            raise DataError(f"{path}: empty file (expected a header line)")
        header = [h.strip() for h in first_row]
        problem = _header_problem(path, header)
        if problem:
            raise DataError(problem)
        last = reader.line_num
        rows: list[Row] = []
        for cells in reader:
            first, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if last > first:  # a quoted cell spans lines: legitimate, unless it swallowed rows
                swallowed = _swallowed_rows(cells, header)
                if swallowed:
                    cell, inner = swallowed
                    found = _scan_record(record_lines(first, last), first)
                    opened = found[3] if found else first
                    raise DataError(
                        f"{path}:{opened}: field '{_cell_name(header, cell)}': the quoted cell "
                        f"that opens here runs on to line {last} and holds lines that look like "
                        f"rows ({inner[:60]!r}); is its closing quote missing?")
            if len(cells) != len(header):
                raise DataError(f"{path}:{first}: expected {len(header)} columns "
                                f"({','.join(header)}), got {len(cells)}")
            rows.append(Row(f"{path}:{first}", {h: c.strip() for h, c in zip(header, cells)}))
    except csv.Error as exc:
        first = last + 1
        raise _quote_error(path, header, record_lines(first, reader.line_num), first,
                           exc) from None
    return header, rows


# ----------------------------------------------------------------------------------------- JSON

def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


class _DuplicateKey(Exception):
    pass


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


class _Lines:
    """Line numbers of increasing positions in a text, in time linear in the text."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        if pos < self.pos:
            return self.text.count("\n", 0, pos) + 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _decoded(path: Path, start_line: int, decode, *args, offset: int = 0):
    """decode(*args), with its errors as DataError at the line of the problem (JSON's own line
    number plus `offset` for a syntax error, `start_line` for the rest)."""
    try:
        return decode(*args)
    except _DuplicateKey as exc:
        raise DataError(f"{path}:{start_line}: field '{exc.args[0]}' appears twice in one "
                        "object") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno + offset}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}:{start_line}: not valid JSON (nested too deeply)") from None


def _decode(path: Path, text: str, pos: int, start_line: int):
    """(value, end) of the JSON value at pos; DataError at the line of the problem."""
    return _decoded(path, start_line, _DECODER.raw_decode, text, pos)


def _json_list(path: Path, text: str, pos: int, lines: _Lines) -> list[Row]:
    """The objects of the JSON list opening at pos; each row is located at its item's line."""
    opened = lines.at(pos)
    rows: list[Row] = []
    starts: set[int] = set()
    n = len(text)
    pos = _SPACE.match(text, pos + 1).end()
    if pos < n and text[pos] == "]":
        pos += 1
    else:
        while True:
            if pos >= n:
                raise DataError(f"{path}:{opened}: not valid JSON (the list that opens here is "
                                "never closed with ']')")
            line = lines.at(pos)
            item, pos = _decode(path, text, pos, line)
            rows.append(Row(f"{path}:{line}", item, f"{path}: record {len(rows) + 1}"))
            starts.add(line)
            pos = _SPACE.match(text, pos).end()
            if pos < n and text[pos] == ",":
                comma = pos
                pos = _SPACE.match(text, pos + 1).end()
                if pos < n and text[pos] == "]":
                    raise DataError(f"{path}:{lines.at(comma)}: not valid JSON (a comma after "
                                    "the last item of the list)")
                continue
            if pos < n and text[pos] == "]":
                pos += 1
                break
            if pos >= n:
                raise DataError(f"{path}:{opened}: not valid JSON (the list that opens here is "
                                "never closed with ']')")
            raise DataError(f"{path}:{lines.at(pos)}: not valid JSON (expected ',' or ']' after "
                            f"the list item at line {line})")
    closed = lines.at(pos)
    pos = _SPACE.match(text, pos).end()
    if pos < n:
        raise DataError(f"{path}:{opened}: the JSON list that starts here is followed by more "
                        f"JSON at line {lines.at(pos)}; a file holds one JSON list, or one JSON "
                        "object per line")
    if closed == opened or len(starts) < len(rows):
        # A list on one line, or items sharing lines: the line says little, the record number more.
        rows = [Row(origin, item, origin) for _, item, origin in rows]
    return rows


def _json_lines(path: Path, text: str) -> list[Row]:
    rows: list[Row] = []
    # split on \n only: str.splitlines() would also break at U+2028, which JSON strings may hold.
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.lstrip("\ufeff")  # a byte-order mark where two files were joined
        if not line.strip():
            continue
        rows.append(Row(f"{path}:{lineno}", _decoded(path, lineno, _DECODER.decode, line, offset=lineno - 1)))
    return rows


def _json_values(path: Path, text: str, pos: int, lines: _Lines) -> list[Row]:
    """JSON values one after another, each over any number of lines (pretty-printed objects)."""
    rows: list[Row] = []
    n = len(text)
    while pos < n:
        start = lines.at(pos)
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            eol = text.find("\n", pos)
            first_line = text[pos:eol if eol >= 0 else n]
            if exc.lineno > start and first_line.strip() not in ("{", "["):
                # A one-line object whose end is missing: the error shows on the next line.
                raise DataError(f"{path}:{start}: not valid JSON (the value that starts here is "
                                f"not closed; at line {exc.lineno}: {exc.msg})") from None
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        except _DuplicateKey as exc:
            raise DataError(f"{path}:{start}: field '{exc.args[0]}' appears twice in one "
                            "object") from None
        except RecursionError:
            raise DataError(f"{path}:{start}: not valid JSON (nested too deeply)") from None
        rows.append(Row(f"{path}:{start}", value))
        pos = _SPACE.match(text, pos).end()
    return rows


def read_json_rows(path: Path) -> list[Row]:
    """Objects from a JSON-lines file, a JSON list (TOFU ships both), or pretty-printed objects.

    The layout is told by the first value: a list is the whole file; a first line that is a
    complete JSON value means JSON lines (errors are then per line); anything else is read as
    values spread over lines.
    """
    text = read_text(path)
    lines = _Lines(text)
    pos = _SPACE.match(text).end()
    if pos >= len(text):
        return []
    if text[pos] == "[":
        rows = _json_list(path, text, pos, lines)
    else:
        end = text.find("\n", pos)
        first = text[pos:end if end >= 0 else len(text)]
        try:
            json.loads(first)
            one_per_line = True
        except (json.JSONDecodeError, RecursionError):
            one_per_line = False
        rows = _json_lines(path, text) if one_per_line else _json_values(path, text, pos, lines)
    for where, item, _ in rows:
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return rows


# -------------------------------------------------------------------------------------- parquet

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
    return [Row(f"{path}: row {i + 1}", row) for i, row in enumerate(table.to_pylist())]
