"""Tables of names: CSV, TSV and Parquet files read with pyarrow, whole or in chunks.

    rows = read_labelled("names.csv", name_column="surname", label_column="country")
    for batch in iter_batches("people.parquet", chunk_rows=65_536):   # pyarrow RecordBatches
        ...

A labelled table is a dataset (``Corpus.from_table``); any table with a name column can
be predicted over (stream.py). CSV and TSV files are read with every column as text,
so a streamed chunk never disagrees with the first one about a column's type and the
values come out as they were written; Parquet keeps its own types.

Line numbers are the file's: line 1 is the header, so the first data row is line 2
(a quoted field that spans lines shifts the count; pyarrow reports malformed rows by
their physical line). A Parquet row is numbered from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .download import DataError
from .kinds import TABLE_SUFFIXES, is_table  # noqa: F401  (is_table: also read from here)

DELIMITERS = {".csv": ",", ".tsv": "\t"}
SHOWN_BAD_ROWS = 5  # a bad row is reported with its line; past this many, only the count
CSV_BLOCK_BYTES = 4 << 20


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


def _where(kind: str, row: int) -> str:
    """Where row ``row`` (0-based, data rows only) sits in the file, as a person reads it."""
    return f"row {row + 1}" if kind == "parquet" else f"line {row + 2}"


def _csv_options(path: Path, *, all_text_columns: list[str] | None, keep_empty_lines: bool, on_invalid=None):
    read = pa_csv.ReadOptions(use_threads=on_invalid is None, block_size=CSV_BLOCK_BYTES, encoding="utf8")
    parse = pa_csv.ParseOptions(
        delimiter=DELIMITERS[path.suffix.lower()], ignore_empty_lines=not keep_empty_lines, invalid_row_handler=on_invalid
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
    where: str  # "line 12" (CSV/TSV) or "row 11" (Parquet)
    name: str
    label: str


def _labelled_rows(table: pa.Table, name_column: str, label_column: str, kind: str) -> tuple[list[LabelledRow], list[str]]:
    """The (name, label) rows of a read table, and where the rows with only one of the two are."""
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
            missing.append(_where(kind, index))
            continue
        rows.append(LabelledRow(_where(kind, index), name, label))
    return rows, missing


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
        else:
            malformed: list[int] = []

            def on_invalid(row) -> str:
                if row.text.strip():
                    malformed.append(row.number)
                return "skip"

            read, parse, convert = _csv_options(path, all_text_columns=columns, keep_empty_lines=True, on_invalid=on_invalid)
            convert.include_columns = [name_column, label_column]
            table = pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
            if malformed:
                raise DataError(
                    _bad_rows_message(
                        path,
                        f"with a number of fields other than the header's {len(columns)}",
                        [f"line {n}" if n is not None else "line ?" for n in malformed],
                        len(malformed),
                        "fix or remove them (a field holding the delimiter must be quoted)",
                    )
                )
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None
    rows, missing = _labelled_rows(table, name_column, label_column, kind)
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

