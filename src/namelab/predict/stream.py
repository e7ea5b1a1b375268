"""Prediction over a table in chunks: every input column kept, the prediction appended.

    namelab predict runs/lstm --input people.csv --name-column surname --output out.parquet

    predictor = load_predictor("runs/lstm")
    summary = predict_table(predictor, "people.csv", "out.parquet", TableOptions(name_column="surname"))

The input is read one chunk at a time (tables.iter_batches) and each chunk is written
before the next is read, so memory holds one chunk whatever the file's size. Rows out
= rows in, in order: a row whose name cannot be classified keeps its place, with an
``error`` and empty prediction fields. The output format follows the output's suffix:
``.parquet``, ``.csv``, ``.tsv`` or ``.jsonl``. A regular file is written to a temporary
file beside it and renamed into place at the end, so a failed run never leaves half a
table; a symlink, a FIFO or a device at ``--output`` is kept (see output.py).

Appended columns (:func:`output_fields`): ``normalized``, ``predicted_language``,
``probability``, then ``predicted_language_K``/``probability_K`` for K = 2..top-k,
``uncertain`` (with ``min_confidence``), ``coverage_set`` (with ``coverage``) and ``error``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm import tqdm

from ..data.corpus import MAX_NAME_LENGTH, input_error
from ..data.download import DataError
from ..data.tables import DELIMITERS, check_columns, column_names, iter_batches, num_rows, table_kind
from .base import prepare
from .output import open_output

OUTPUT_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl")
DEFAULT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class TableOptions:
    name_column: str = "name"
    top_k: int = 1
    min_confidence: float | None = None
    coverage: float | None = None


def output_fields(options: TableOptions) -> list[pa.Field]:
    """The columns appended to every input row, in order."""
    fields = [pa.field("normalized", pa.string()), pa.field("predicted_language", pa.string())]
    fields.append(pa.field("probability", pa.float64()))
    for k in range(2, options.top_k + 1):
        fields += [pa.field(f"predicted_language_{k}", pa.string()), pa.field(f"probability_{k}", pa.float64())]
    if options.min_confidence is not None:
        fields.append(pa.field("uncertain", pa.bool_()))
    if options.coverage is not None:
        fields.append(pa.field("coverage_set", pa.list_(pa.string())))
    fields.append(pa.field("error", pa.string()))
    return fields


def check_input_columns(path: Path | str, columns: list[str], options: TableOptions) -> None:
    check_columns(path, columns, {options.name_column: "--name-column"})
    clashes = [field.name for field in output_fields(options) if field.name in columns]
    if clashes:
        raise DataError(
            f"{path} already has column(s) {', '.join(map(repr, clashes))}, which prediction appends; "
            "rename them in the input"
        )


def annotate(predictor, table: pa.Table | pa.RecordBatch, options: TableOptions) -> pa.Table:
    """``table`` with the prediction columns appended, one row per input row.

    Goes through :meth:`Predictor.probabilities` and :meth:`Predictor.describe`, so the
    probabilities are the run's calibrated ones. A table with no usable name never
    touches the model (``predictor`` may then be ``None``).
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = pc.fill_null(table.column(options.name_column).cast(pa.string()), "")
    # Tables of people repeat names (a surname is shared by many rows): each distinct name
    # is normalized once, each distinct normalized name predicted once, and the columns
    # are built per distinct name, then spread over the rows with one ``take``.
    encoded = pc.dictionary_encode(names.combine_chunks())
    uniques = encoded.dictionary.to_pylist()
    normalized_of: list[str | None] = [None] * len(uniques)
    error_of: list[str | None] = [None] * len(uniques)
    slot_of = np.full(len(uniques), -1, dtype=np.int64)  # row of the distinct normalized name, -1: error
    distinct: dict[str, int] = {}
    # The names-file rules: too long to read (raw), no letters, or too long once normalized.
    checked = []
    for u, name in enumerate(uniques):
        error_of[u] = input_error(name)
        if error_of[u] is None:
            checked.append(u)
    results, _, _ = prepare([uniques[u] for u in checked], MAX_NAME_LENGTH)
    for u, row in zip(checked, results):
        if "error" in row:
            error_of[u] = row["error"]
        else:
            normalized_of[u] = row["normalized"]
            slot_of[u] = distinct.setdefault(normalized_of[u], len(distinct))
    per_distinct: dict[str, list] = {field.name: [] for field in output_fields(options)}
    if distinct:
        probs = predictor.probabilities(list(distinct))
        described = predictor.describe(
            probs, options.top_k, min_confidence=options.min_confidence, coverage=options.coverage
        )
        for k in range(options.top_k):
            suffix = "" if k == 0 else f"_{k + 1}"
            per_distinct[f"predicted_language{suffix}"] = [row["predictions"][k]["language"] for row in described]
            per_distinct[f"probability{suffix}"] = [row["predictions"][k]["probability"] for row in described]
        for key in ("uncertain", "coverage_set"):
            if key in per_distinct:
                per_distinct[key] = [row[key] for row in described]
    rows = encoded.indices
    to_unique = pa.array(slot_of, mask=slot_of < 0)
    columns: dict[str, pa.Array] = {}
    for field in output_fields(options):
        if field.name == "normalized":
            columns[field.name] = pa.array(normalized_of, type=field.type).take(rows)
        elif field.name == "error":
            columns[field.name] = pa.array(error_of, type=field.type).take(rows)
        else:
            columns[field.name] = pa.array(per_distinct[field.name], type=field.type).take(to_unique).take(rows)
    for field in output_fields(options):
        table = table.append_column(field, columns[field.name])
    return table


class _Writer:
    """Appends tables to one output file in the format of its suffix (or CSV to a stream)."""

    def __init__(self, target, schema: pa.Schema, kind: str):
        self.kind = kind
        self.handle = target
        if kind == "parquet":
            self.writer = pq.ParquetWriter(target, schema)
        elif kind in ("csv", "tsv"):
            self.schema = _flat_schema(schema)
            options = pa_csv.WriteOptions(delimiter=DELIMITERS[f".{kind}"])
            self.writer = pa_csv.CSVWriter(target, self.schema, write_options=options)
        else:
            self.writer = None

    def write(self, table: pa.Table) -> None:
        if self.kind == "parquet":
            self.writer.write_table(table)
        elif self.kind in ("csv", "tsv"):
            self.writer.write_table(_flatten(table).cast(self.schema))
        else:
            lines = (json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in table.to_pylist())
            self.handle.write("".join(lines).encode("utf-8"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _flat_schema(schema: pa.Schema) -> pa.Schema:
    """CSV has no lists: a list column is written as its items joined by ``|``."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema])


def _flatten(table: pa.Table) -> pa.Table:
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type):
            joined = pa.array(
                [None if v is None else "|".join(v) for v in table.column(index).to_pylist()], type=pa.string()
            )
            table = table.set_column(index, pa.field(field.name, pa.string()), joined)
    return table


def output_kind(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise DataError(f"cannot tell the output format of {path}; end its name with {', '.join(OUTPUT_SUFFIXES)}")
    return suffix[1:]


def write_tables(tables: Iterable[pa.Table], output: Path | str | None, schema: pa.Schema, *, input_path=None) -> None:
    """Write ``tables`` in order to ``output``, or CSV to standard output, by :func:`~namelab.predict.output.open_output`'s rules.

    A regular file is replaced atomically once every table is written; a FIFO or a
    device is written through (Parquet too: its writer never seeks back).
    """
    kind = "csv" if output is None else output_kind(output)
    with open_output(output, input_path=input_path, binary=True) as handle:
        writer = _Writer(handle, schema, kind)
        try:
            for table in tables:
                writer.write(table)
        finally:
            writer.close()  # also on failure, while the file is open: a writer left open fails later


def input_schema(path: Path | str) -> pa.Schema:
    """The schema rows are read with: Parquet's own, or every CSV/TSV column as text."""
    if table_kind(path) == "parquet":
        return pq.read_schema(path)
    return pa.schema([pa.field(name, pa.string()) for name in column_names(path)])


@dataclass
class StreamSummary:
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def names_per_second(self) -> float:
        return (self.rows - self.errors) / self.seconds if self.seconds > 0 else 0.0


def predict_table(
    predictor,
    input_path: Path | str,
    output: Path | str | None,
    options: TableOptions,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> StreamSummary:
    """Predict every row of ``input_path`` and write the annotated rows to ``output``.

    ``progress``: a tqdm bar of rows (and names per second) on standard error; by
    default only when standard error is a terminal.
    """
    options = TableOptions(
        options.name_column, max(1, min(options.top_k, len(predictor.labels))), options.min_confidence, options.coverage
    )
    schema = input_schema(input_path)
    check_input_columns(input_path, schema.names, options)
    schema = pa.schema(list(schema) + output_fields(options))
    summary = StreamSummary()
    bar = _progress_bar(num_rows(input_path), progress)
    start = time.perf_counter()

    def annotated() -> Iterable[pa.Table]:
        for batch in iter_batches(input_path, chunk_rows):
            table = annotate(predictor, batch, options)
            summary.rows += table.num_rows
            summary.errors += table.num_rows - table.column("error").null_count
            if bar is not None:
                bar.update(table.num_rows)
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{(summary.rows - summary.errors) / elapsed:,.0f} names/s", refresh=False)
            yield table

    try:
        write_tables(annotated(), output, schema, input_path=input_path)
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - start
    if log is not None:
        log(
            f"{summary.rows:,} rows ({summary.errors:,} without a usable name) in {summary.seconds:.1f}s: "
            f"{summary.names_per_second:,.0f} names/s"
        )
    return summary


def _progress_bar(total: int | None, wanted: bool | None):
    if wanted is False or (wanted is None and not sys.stderr.isatty()):
        return None
    return tqdm(total=total, unit=" rows", unit_scale=True, dynamic_ncols=True, file=sys.stderr)
