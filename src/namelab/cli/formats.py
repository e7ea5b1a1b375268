"""What the command line reads and prints: names files, per-name rows, and the text, CSV and JSON formats.

    names = read_names_file(Path("names.txt"))      # one name per line, rules in LINE_RULE
    rows = predict_rows(predictor, names, top_k=3, min_confidence=0.5)
    print(format_predictions(rows, "csv", top_k=3))   # columns: namelab.inference.schema
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

from ..data.corpus import MAX_NAME_LENGTH, input_error
from ..data.download import DataError
from ..inference.schema import flat_columns, flat_row, json_line, json_record, text_line


def read_names_file(path: Path) -> list[str]:
    """One name per line (see :data:`LINE_RULE`), every line kept, blank ones too, so rows line up with lines.

    A byte that is not UTF-8 spoils its own line only: it is kept as a lone surrogate
    (``surrogateescape``), which :func:`name_error` turns into an error row for that line.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    except FileNotFoundError:
        raise DataError(f"input file {path} does not exist") from None
    except OSError as err:
        raise DataError(f"cannot read input file {path}: {err.strerror}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    return [line.removesuffix("\r") for line in lines]


LINE_RULE = (
    "A line of --input ends at LF (\\n) only; one CR just before it is dropped (CRLF files), and any other "
    "character (a lone CR, U+2028, U+0085, form feed) stays part of the name. Every line gives exactly one "
    "output row, in order: csv follows RFC 4180 (CRLF records, fields with CR, LF, quotes or commas quoted); "
    "json gives one object per LF-ended line, with U+2028, U+2029 and U+0085 escaped; text escapes tabs and "
    "line-breaking characters as \\t, \\r, \\u2028 and so on."
)


def _shown(name: str) -> str:
    """``name`` as printable text: bytes that were not UTF-8 (or lone surrogates) as backslash escapes."""
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def name_error(name: str) -> str | None:
    """Why ``name`` is refused before it is even normalized, or None (the predictor checks the normalized form)."""
    return input_error(name)  # the rule tables share (predict/stream.py)


def predict_rows(predictor, names: Sequence[str], top_k: int, **options) -> list[dict]:
    """One row per name, in order: its prediction, or an error for that name alone (``options``: Predictor.predict's)."""
    rows: list[dict | None] = [None] * len(names)
    todo = []
    for i, name in enumerate(names):
        error = name_error(name)
        if error:
            rows[i] = {"name": _shown(name), "error": error}
        else:
            todo.append(i)
    predicted = predictor.predict([names[i] for i in todo], top_k=top_k, max_length=MAX_NAME_LENGTH, **options)
    for i, row in zip(todo, predicted):
        rows[i] = row
    return rows


def format_predictions(results: list[dict], fmt: str, top_k: int, *, coverage: bool | None = None) -> str:
    """JSON lines, CSV or text, by the one schema of namelab.inference.schema.

    ``coverage``: whether the CSV has a ``coverage_set`` column (None: when a row holds a set).
    """
    out = io.StringIO()
    if fmt == "json":
        for row in results:
            out.write(json_line(json_record(row)))
    elif fmt == "csv":
        # RFC 4180: CRLF ends a record, so a field holding CR or LF is quoted.
        writer = csv.writer(out, lineterminator="\r\n")
        columns = flat_columns(
            ["name"], top_k, coverage=any("coverage_set" in row for row in results) if coverage is None else coverage
        )
        writer.writerow(columns)
        for row in results:
            writer.writerow(flat_row(row, top_k, columns))
    else:
        for row in results:
            out.write(text_line(row) + "\n")
    return out.getvalue()
