"""Prediction over a table in chunks: every input column kept, the prediction appended.

    namelab predict runs/lstm --input people.csv --name-column surname --output out.parquet

    predictor = load_predictor("runs/lstm")
    summary = predict_table(predictor, "people.csv", "out.parquet", TableOptions(name_column="surname"))

The input is read one chunk at a time (tables.iter_batches) and each chunk is written
before the next is read, so memory holds one chunk whatever the file's size. Rows out
= rows in, in order: a row whose name cannot be classified keeps its place, with an
``error`` and empty prediction fields. The output format is ``kind`` when given (the CLI's
``--format``: csv, json, text) or else the output's suffix: ``.parquet``, ``.csv``,
``.tsv``, ``.jsonl`` (JSON lines) or ``.txt`` (text); standard output gets CSV. A regular file is written to a temporary
file beside it and renamed into place at the end, so a failed run never leaves half a
table; a symlink, a FIFO or a device at ``--output`` is kept (see output.py).

Appended columns (:func:`output_fields`): the flat schema of namelab.inference.schema,
``normalized``, ``language_1``, ``probability_1``, ... ``uncertain``, ``coverage_set``
(with ``coverage``), ``error``. CSV, TSV and Parquet hold probabilities to 4 decimals
(Parquet typed: bool ``uncertain``, a list ``coverage_set``, which CSV joins by ``|``);
JSON lines hold one record per row, the row's own columns under ``"input"``, probabilities
to 6 decimals; text is a line per row, its own cells then the prediction.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from ..data.corpus import MAX_NAME_LENGTH, UnusableName, input_error, normalize
from ..data.download import DataError
from ..data.tables import DELIMITERS, check_columns, column_names, iter_batches, num_rows, table_kind
from .base import prepare
from .output import open_output
from .priors import ESTIMATE_PRIOR, TRAIN_PRIOR, estimate_prior
from .schema import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_TOP_K,
    FLAT_DECIMALS,
    RESULT_FIELDS,
    column_kind,
    flat_text,
    flat_values,
    json_line,
    json_record,
    prediction_columns,
    text_line,
)
from .unknown import DEFAULT_FALSE_ALARM

OUTPUT_KINDS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".txt": "text"}
OUTPUT_SUFFIXES = tuple(OUTPUT_KINDS)
DEFAULT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class TableOptions:
    name_column: str = "name"
    top_k: int = DEFAULT_TOP_K
    min_confidence: float | None = DEFAULT_MIN_CONFIDENCE
    coverage: float | None = None
    prior: str | torch.Tensor = TRAIN_PRIOR  # train, uniform, estimate, a file, or the shares themselves
    false_alarm: float = DEFAULT_FALSE_ALARM  # the unknown-language threshold's share of validation names


_ARROW_TYPES = {
    "text": pa.string(), "probability": pa.float64(), "score": pa.float64(), "flag": pa.bool_(), "set": pa.list_(pa.string())
}


def _arrow_type(column: str) -> pa.DataType:
    return _ARROW_TYPES[column_kind(column)]


def output_fields(options: TableOptions) -> list[pa.Field]:
    """The columns appended to every input row, in order (namelab.inference.schema's, typed)."""
    columns = prediction_columns(options.top_k, coverage=options.coverage is not None)
    return [pa.field(column, _arrow_type(column)) for column in columns]


class ProbabilityCache:
    """Each distinct name's calibrated probabilities, computed once, and how often it occurs."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.row: dict[str, int] = {}
        self.counts: list[int] = []
        self.parts: list[torch.Tensor] = []

    def add(self, names: Sequence[str | None]) -> None:
        fresh = []
        for name in names:
            try:
                text = normalize(name or "")
            except UnusableName:
                continue
            if text not in self.row:
                self.row[text] = len(self.counts)
                self.counts.append(0)
                fresh.append(text)
            self.counts[self.row[text]] += 1
        if fresh:
            self.parts.append(self.predictor.probabilities(fresh))

    def estimate(self) -> torch.Tensor:
        if not self.counts:
            raise DataError("no usable name in the table to estimate a prior from; use --prior train or uniform")
        probs = torch.cat(self.parts)
        return estimate_prior(probs, self.predictor.train_prior, counts=torch.tensor(self.counts))[0]

    def lookup(self, normalized: list[str]) -> torch.Tensor:
        if not self.parts:
            return torch.empty(0, len(self.predictor.labels))
        table = torch.cat(self.parts) if len(self.parts) > 1 else self.parts[0]
        self.parts = [table]
        return table[torch.tensor([self.row[name] for name in normalized], dtype=torch.long)]


def check_input_columns(path: Path | str, columns: list[str], options: TableOptions) -> None:
    check_columns(path, columns, {options.name_column: "--name-column"})
    clashes = [field.name for field in output_fields(options) if field.name in columns]
    if clashes:
        raise DataError(
            f"{path} already has column(s) {', '.join(map(repr, clashes))}, which prediction appends; "
            "rename them in the input"
        )


def _predicted_columns(predictor, distinct: list[str], options: TableOptions, probabilities=None) -> dict[str, list]:
    """The prediction columns of each distinct normalized name (full values: the flat writers round)."""
    per_distinct: dict[str, list] = {field.name: [] for field in output_fields(options)}
    if not distinct:
        return per_distinct
    probs = (probabilities or predictor.probabilities)(distinct)
    described = predictor.describe(
        predictor.with_prior(probs, predictor.target_prior(options.prior, probs)),
        options.top_k,
        min_confidence=options.min_confidence,
        coverage=options.coverage,
        unknown_scores=predictor.unknown_scores(distinct),
        false_alarm=options.false_alarm,
        set_probs=probs,
    )
    coverage = options.coverage is not None
    values = [flat_values(row, options.top_k, coverage=coverage, decimals=None) for row in described]
    for key in per_distinct:
        if key not in ("normalized", "error"):
            per_distinct[key] = [row[key] for row in values]
    return per_distinct


def annotate(
    predictor,
    table: pa.Table | pa.RecordBatch,
    options: TableOptions,
    probabilities: Callable[[list[str]], torch.Tensor] | None = None,
) -> pa.Table:
    """``table`` with the prediction columns appended, one row per input row.

    Goes through :meth:`Predictor.probabilities` (or ``probabilities``, a cache of them)
    and :meth:`Predictor.describe`, so the probabilities are the run's calibrated ones,
    re-weighted to ``options.prior``. A table with no usable name never touches the model
    (``predictor`` may then be ``None``).
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
    per_distinct = _predicted_columns(predictor, list(distinct), options, probabilities)
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


def rounded(table: pa.Table) -> pa.Table:
    """``table`` with its probability columns rounded to the flat surfaces' 4 decimals."""
    for index, field in enumerate(table.schema):
        if column_kind(field.name) in ("probability", "score") and pa.types.is_floating(field.type):
            table = table.set_column(index, field, pc.round(table.column(index), FLAT_DECIMALS))
    return table


class _Writer:
    """Appends annotated tables to one output in one kind: parquet, csv, tsv, json (lines) or text."""

    def __init__(self, target, schema: pa.Schema, kind: str, options: TableOptions):
        self.kind = kind
        self.handle = target
        self.options = options
        predicted = {field.name for field in output_fields(options)}
        self.inputs = [name for name in schema.names if name not in predicted]
        self.writer = None
        if kind == "parquet":
            self.writer = pq.ParquetWriter(target, schema)
        elif kind in ("csv", "tsv"):
            self.schema = _flat_schema(schema, predicted)
            delimiter = DELIMITERS[f".{kind}"]
            # Strings stay quoted (an empty name "" apart from a missing one); the header only where needed.
            plain = not any(set(name) & {delimiter, '"', "\r", "\n"} for name in schema.names)
            options = pa_csv.WriteOptions(delimiter=delimiter, quoting_header="none" if plain else "needed")
            self.writer = pa_csv.CSVWriter(target, self.schema, write_options=options)

    def write(self, table: pa.Table) -> None:
        if self.kind == "parquet":
            self.writer.write_table(rounded(table))
        elif self.kind in ("csv", "tsv"):
            self.writer.write_table(_as_text(table, self.schema))
        else:
            lines = []
            for row in table.to_pylist():
                result = _result_of(row, self.options)
                if self.kind == "json":
                    lines.append(json_line(json_record(result, {name: row[name] for name in self.inputs})))
                else:
                    lines.append(text_line(result, [row[name] for name in self.inputs]) + "\n")
            self.handle.write("".join(lines).encode("utf-8"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _result_of(row: dict, options: TableOptions) -> dict:
    """An annotated row's prediction as the schema's result dict (what Predictor.predict gives)."""
    predictions = []
    for k in range(1, options.top_k + 1):
        if row[f"language_{k}"] is not None:
            predictions.append({"language": row[f"language_{k}"], "probability": row[f"probability_{k}"]})
    name = row[options.name_column]
    result = {key: row[key] for key in RESULT_FIELDS if key in row}
    result.update(name="" if name is None else str(name), predictions=predictions or None)
    return result


def _flat_schema(schema: pa.Schema, predicted: set[str]) -> pa.Schema:
    """The CSV's columns: the input's as they are, the prediction's as text (see schema.flat_text)."""
    return pa.schema([pa.field(f.name, pa.string()) if f.name in predicted else f for f in schema])


def _as_text(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The prediction columns as the text every flat surface writes: 4 decimals, true/false, sets joined by |."""
    for index, field in enumerate(table.schema):
        if schema.field(index).type != field.type and field.name in schema.names:
            cells = [None if v is None else flat_text(v) for v in table.column(index).to_pylist()]
            table = table.set_column(index, schema.field(index), pa.array(cells, type=pa.string()))
    return table.cast(schema)


def output_kind(path: Path | str | None, kind: str | None = None) -> str:
    """The output's kind: ``kind`` (csv, tsv, json, text, parquet) if given, else by the suffix; CSV on standard output."""
    suffix = None if path is None else Path(path).suffix.lower()
    by_suffix = OUTPUT_KINDS.get(suffix) if suffix else None
    if kind is not None:
        if by_suffix is not None and by_suffix != kind:
            raise DataError(f"--format {kind} does not match --output {path} (a {by_suffix} file); drop one of the two")
        return kind
    if path is None:
        return "csv"
    if by_suffix is None:
        raise DataError(
            f"cannot tell the output format of {path}; end its name with {', '.join(OUTPUT_SUFFIXES)} or give --format"
        )
    return by_suffix


def write_tables(
    tables: Iterable[pa.Table],
    output: Path | str | None,
    schema: pa.Schema,
    options: TableOptions,
    *,
    input_path=None,
    kind: str | None = None,
) -> None:
    """Write ``tables`` in order to ``output`` (standard output when None), by :func:`~namelab.inference.output.open_output`'s rules.

    ``kind``: see :func:`output_kind`. A regular file is replaced atomically once every
    table is written; a FIFO or a device is written through (Parquet too: its writer never seeks back).
    """
    kind = output_kind(output, kind)
    with open_output(output, input_path=input_path, binary=True) as handle:
        writer = _Writer(handle, schema, kind, options)
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
    prior: list[float] | None = None  # the shares --prior estimate found, in label order

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
    kind: str | None = None,
) -> StreamSummary:
    """Predict every row of ``input_path`` and write the annotated rows to ``output``.

    ``progress``: a tqdm bar of rows (and names per second) on standard error; by
    default only when standard error is a terminal. ``kind``: the output format (see
    :func:`output_kind`).
    """
    options = replace(options, top_k=max(1, min(options.top_k, len(predictor.labels))))
    output_kind(output, kind)  # a wrong suffix or --format fails before any work
    schema = input_schema(input_path)
    check_input_columns(input_path, schema.names, options)
    schema = pa.schema(list(schema) + output_fields(options))
    summary = StreamSummary()
    bar = _progress_bar(num_rows(input_path), progress)
    start = time.perf_counter()

    probabilities = None
    if isinstance(options.prior, str) and options.prior == ESTIMATE_PRIOR:
        # EM needs every name's probabilities before the first row is written: one model pass
        # over the distinct names, kept for the writing pass, which reads the table again.
        cache = ProbabilityCache(predictor)
        for batch in iter_batches(input_path, chunk_rows):
            cache.add(batch.column(options.name_column).to_pylist())
        options = replace(options, prior=cache.estimate())
        summary.prior = options.prior.tolist()
        probabilities = cache.lookup

    def annotated() -> Iterable[pa.Table]:
        for batch in iter_batches(input_path, chunk_rows):
            table = annotate(predictor, batch, options, probabilities)
            summary.rows += table.num_rows
            summary.errors += table.num_rows - table.column("error").null_count
            if bar is not None:
                bar.update(table.num_rows)
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{(summary.rows - summary.errors) / elapsed:,.0f} names/s", refresh=False)
            yield table

    try:
        write_tables(annotated(), output, schema, options, input_path=input_path, kind=kind)
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
