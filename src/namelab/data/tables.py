"""Tables of names: CSV, TSV and Parquet files read with pyarrow, whole or in chunks.

    rows = read_labelled("names.csv", name_column="surname", label_column="country")
    for batch in iter_batches("people.parquet", chunk_rows=65_536):   # pyarrow RecordBatches
        ...

A labelled table is a dataset (``Corpus.from_table``); any table with a name column can
be predicted over (stream.py). CSV and TSV files are read with every column as text,
so a streamed chunk never disagrees with the first one about a column's type and the
values come out as they were written; Parquet keeps its own types.

A CSV/TSV row is reported by the line it starts on, as an editor numbers them: line 1 is
the header, and a quoted field that holds line breaks (LF, CRLF or a lone CR) moves every
later row down by as many lines. A Parquet row is numbered from 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .download import DataError
from .kinds import TABLE_SUFFIXES, is_table  # noqa: F401  (is_table: also read from here)

DELIMITERS = {".csv": ",", ".tsv": "\t"}
SHOWN_BAD_ROWS = 5  # a bad row is reported with its line; past this many, only the count
CSV_BLOCK_BYTES = 4 << 20
LINE_BREAK = r"\r\n?|\n"  # what ends a line, for pyarrow's CSV reader as for an editor
_LINE_BREAK = re.compile(LINE_BREAK)


def table_kind(path: Path | str) -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"``, from the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(
            f"{path} is not a table namelab reads; give a .csv, .tsv or .parquet file (or a folder of <Language>.txt)"
        )
    return suffix[1:]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"table {path} does not exist")
    if not path.is_file():
        raise DataError(f"table {path} is not a regular file")


def _csv_options(path: Path, *, all_text_columns: list[str] | None, keep_empty_lines: bool, on_invalid=None):
    read = pa_csv.ReadOptions(use_threads=on_invalid is None, block_size=CSV_BLOCK_BYTES, encoding="utf8")
    # newlines_in_values: without it a quoted field with a line break across a block boundary
    # stops the reader ("out of sync with chunker"); it costs nothing measurable on plain files.
    parse = pa_csv.ParseOptions(
        delimiter=DELIMITERS[path.suffix.lower()],
        ignore_empty_lines=not keep_empty_lines,
        invalid_row_handler=on_invalid,
        newlines_in_values=True,
    )
    types = {name: pa.string() for name in all_text_columns or []}
    convert = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False)
    return read, parse, convert


def _skip(row) -> str:
    return "skip"


def column_names(path: Path | str) -> list[str]:
    """The column names of a table, read from its header (CSV/TSV) or schema (Parquet)."""
    path = Path(path)
    _check_file(path)
    kind = table_kind(path)
    try:
        if kind == "parquet":
            return list(pq.read_schema(path).names)
        # Malformed rows are the readers' to report; the header is all this needs.
        read, parse, convert = _csv_options(path, all_text_columns=None, keep_empty_lines=False, on_invalid=_skip)
        with pa_csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            return list(reader.schema.names)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"cannot read table {path}: {err}") from None


def check_columns(path: Path | str, columns: list[str], wanted: dict[str, str]) -> None:
    """Raise a :class:`DataError` naming the option to pass when a wanted column is missing.

    ``wanted`` maps a column name to the option that chose it (``{"surname": "--name-column"}``).
    """
    for column, option in wanted.items():
        if columns.count(column) > 1:
            raise DataError(
                f"{path} has {columns.count(column)} columns named {column!r} (its columns: "
                f"{', '.join(map(repr, columns))}); rename all but one in the header, or pass {option} with another"
            )
        if column not in columns:
            raise DataError(
                f"{path} has no column {column!r} (its columns: {', '.join(map(repr, columns))}); "
                f"pass {option} with one of them"
            )


def _bad_rows_message(path: Path, problem: str, where: list[str], total: int, fix: str) -> str:
    shown = ", ".join(where[:SHOWN_BAD_ROWS])
    more = f" and {total - SHOWN_BAD_ROWS} more" if total > SHOWN_BAD_ROWS else ""
    return f"{path}: {total} row(s) {problem}: {shown}{more}; {fix}"


@dataclass(frozen=True)
class LabelledRow:
    where: str  # "line 12" (CSV/TSV: the line the row starts on) or "row 11" (Parquet)
    name: str
    label: str


def _labelled_rows(
    table: pa.Table, name_column: str, label_column: str, where: Callable[[int], str]
) -> tuple[list[LabelledRow], list[str]]:
    """The (name, label) rows of a read table, and where the rows with only one of the two are.

    ``where``: where a row (0-based, in the table) sits in its file, as a person reads it.
    """
    names = table.column(name_column).cast(pa.string()).to_pylist()
    label_values = table.column(label_column)
    if pa.types.is_floating(label_values.type):  # a NaN is a missing label, not a class "nan"
        label_values = pc.if_else(pc.is_nan(label_values), pa.scalar(None, label_values.type), label_values)
    labels = label_values.cast(pa.string()).to_pylist()
    rows: list[LabelledRow] = []
    missing: list[str] = []
    for index, (name, label) in enumerate(zip(names, labels)):
        name, label = (name or "").strip(), (label or "").strip()
        if not name and not label:
            continue  # a blank line, as in a names folder
        if not name or not label:
            missing.append(where(index))
            continue
        rows.append(LabelledRow(where(index), name, label))
    return rows, missing


def _line_breaks(values: pa.Array) -> np.ndarray | None:
    """How many line breaks each text value holds; None when none holds one (most columns: two substring searches)."""
    if not any(pc.any(pc.match_substring(values, end)).as_py() for end in ("\n", "\r")):
        return None
    return pc.fill_null(pc.count_substring_regex(values, LINE_BREAK), 0).to_numpy(zero_copy_only=False)


def _row_breaks(batch: pa.RecordBatch) -> np.ndarray | None:
    """How many line breaks each row's fields hold together (quoted ones), or None when no field holds one."""
    counts = [breaks for column in batch.columns if (breaks := _line_breaks(column)) is not None]
    return sum(counts) if counts else None


def _record_lines(header_breaks: int, row_breaks: np.ndarray, skipped: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The line each record of a CSV/TSV starts on (at record number - 1), and which records are table rows.

    pyarrow numbers records from 1, the header; each later one is a table row (in order) or a
    row it skipped (``skipped``: number -> line breaks inside it). A record starts on the line
    after the one before ends, and ends as many lines down as it holds line breaks.
    """
    total = 1 + len(row_breaks) + len(skipped)
    skipped_at = np.fromiter(skipped, dtype=np.int64, count=len(skipped)) - 1
    is_row = np.ones(total, dtype=bool)
    is_row[0] = False
    is_row[skipped_at] = False
    breaks = np.zeros(total, dtype=np.int64)
    breaks[0] = header_breaks
    breaks[skipped_at] = np.fromiter(skipped.values(), dtype=np.int64, count=len(skipped))
    breaks[is_row] = row_breaks
    return np.arange(1, total + 1) + np.cumsum(breaks) - breaks, is_row


def _read_delimited(path: Path, columns: list[str], name_column: str, label_column: str) -> tuple[pa.Table, np.ndarray]:
    """The name and label columns of a CSV/TSV, and the line each of their rows starts on.

    Raises a :class:`DataError` listing, by line, the rows with a number of fields other than the header's.
    """
    skipped: dict[int, int] = {}
    malformed: list[int] = []

    def on_invalid(row) -> str:
        skipped[row.number] = len(_LINE_BREAK.findall(row.text))
        if row.text.strip():  # else a line of spaces: no row, like a blank line
            malformed.append(row.number)
        return "skip"

    read, parse, convert = _csv_options(path, all_text_columns=columns, keep_empty_lines=True, on_invalid=on_invalid)
    kept: list[pa.RecordBatch] = []
    breaks: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    blank_lines, header_at = _blank_lines_before_the_header(path)
    # Every column is read, a block at a time, for the line breaks in its quoted fields; two are kept.
    with pa.OSFile(str(path)) as raw:
        raw.seek(header_at)  # read as it is, a blank line would be the header (blank lines are kept: rows count them)
        with pa_csv.open_csv(raw, read_options=read, parse_options=parse, convert_options=convert) as reader:
            schema = pa.schema([reader.schema.field(name_column), reader.schema.field(label_column)])
            for batch in reader:
                kept.append(batch.select([name_column, label_column]))
                row_breaks = _row_breaks(batch)
                breaks.append(np.zeros(batch.num_rows, dtype=np.int64) if row_breaks is None else row_breaks)
    header_breaks = sum(len(_LINE_BREAK.findall(column)) for column in columns)
    starts, is_row = _record_lines(header_breaks, np.concatenate(breaks), skipped)
    starts += blank_lines
    if malformed:
        raise DataError(
            _bad_rows_message(
                path,
                f"with a number of fields other than the header's {len(columns)}",
                [f"line {starts[number - 1]}" for number in malformed],
                len(malformed),
                "fix or remove them (a field holding the delimiter must be quoted)",
            )
        )
    return pa.Table.from_batches(kept, schema=schema), starts[is_row]


def _blank_lines_before_the_header(path: Path) -> tuple[int, int]:
    """How many empty lines open the file, and the byte where the header starts (after a UTF-8 BOM too)."""
    with path.open("rb") as handle:
        head = handle.read(CSV_BLOCK_BYTES)
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    blank = re.match(rb"(?:\r\n?|\n)*", head[start:]).group()
    return len(_LINE_BREAK.findall(blank.decode("ascii"))), (start + len(blank) if blank else 0)


def read_labelled(path: Path | str, name_column: str, label_column: str) -> list[LabelledRow]:
    """Every (name, label) row of a table, in file order; blank lines are dropped.

    Raises a :class:`DataError` listing the first few bad rows by line: a row with the
    wrong number of fields, or one with a name but no label (or a label but no name).
    """
    path = Path(path)
    kind = table_kind(path)
    columns = column_names(path)
    check_columns(path, columns, {name_column: "--name-column", label_column: "--label-column"})
    if name_column == label_column:
        raise DataError(f"--name-column and --label-column are both {name_column!r}; they must differ")
    try:
        if kind == "parquet":
            table = pq.read_table(path, columns=[name_column, label_column])
            where: Callable[[int], str] = lambda index: f"row {index + 1}"
        else:
            table, lines = _read_delimited(path, columns, name_column, label_column)
            where = lambda index: f"line {lines[index]}"
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None
    rows, missing = _labelled_rows(table, name_column, label_column, where)
    if missing:
        raise DataError(
            _bad_rows_message(
                path,
                f"with an empty {name_column!r} or {label_column!r}",
                missing,
                len(missing),
                "fill or remove them",
            )
        )
    return rows


def spans_lines(path: Path | str) -> bool:
    """Whether a row of a CSV/TSV spans lines: a quoted field (or column name) holds a line break. Never in Parquet.

    A file without a quote character has none, which a search of its bytes tells; one with
    quotes is streamed through the reader (memory: one block), which raises a
    :class:`DataError` at a malformed row, as :func:`iter_batches` does.
    """
    path = Path(path)
    _check_file(path)
    if table_kind(path) == "parquet" or not _has_quote(path):
        return False
    if any(_LINE_BREAK.search(column) for column in column_names(path)):
        return True
    return any(_row_breaks(batch) is not None for batch in iter_batches(path))


def _has_quote(path: Path) -> bool:
    # Bytes, a block at a time: far cheaper than parsing, and enough to clear most files.
    with path.open("rb") as handle:
        while block := handle.read(CSV_BLOCK_BYTES):
            if b'"' in block:
                return True
    return False


def num_rows(path: Path | str) -> int | None:
    """The number of rows of a Parquet file (from its footer); ``None`` for CSV/TSV (unknown before reading)."""
    return pq.ParquetFile(path).metadata.num_rows if table_kind(path) == "parquet" else None


def iter_batches(path: Path | str, chunk_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream a table as record batches of at most ``chunk_rows`` rows, every column.

    Memory holds one batch (and, for CSV, one block of the file), whatever the file's size.
    Blank lines of a CSV/TSV file are not rows.
    """
    path = Path(path)
    kind = table_kind(path)
    columns = column_names(path)
    try:
        if kind == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
            return
        read, parse, convert = _csv_options(path, all_text_columns=columns, keep_empty_lines=False)
        with pa_csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    yield batch.slice(start, chunk_rows)
    except pa.ArrowInvalid as err:
        raise _read_error(path, err) from None


def _read_error(path: Path, err: Exception) -> DataError:
    if "UTF8" in str(err):
        return DataError(f"table {path} is not UTF-8 text ({err}); save it as UTF-8")
    return DataError(
        f"cannot read table {path}: {err}; every row needs the header's fields (quote a field that holds the delimiter)"
    )

