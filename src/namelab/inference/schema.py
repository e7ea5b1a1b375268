"""The one output schema of every surface: the CLI's text, CSV and JSON, tables, the API and the page.

    columns = flat_columns(["name"], top_k=3, coverage=False)
    # ['name', 'normalized', 'language_1', 'probability_1', ..., 'probability_3', 'uncertain',
    #  'unknown_language', 'unknown_score', 'error']
    row = flat_row(result, 3, columns, {"name": "Nakamura"})       # one CSV row, as text
    record = json_record(result)                                   # one JSON object

``result`` is what :meth:`Predictor.predict` gives for one name: ``{"name", "normalized",
"predictions": [{"language", "probability"}, ...], "uncertain", "coverage_set"}`` or
``{"name", "error"}``; the API gives the same per model (:func:`model_result` picks one).

Flat rows (CSV, TSV, Parquet, the text format, the page's download): the input's own
columns first, unchanged and in order (a names file has one: ``name``), then
``normalized``, ``language_1, probability_1, ..., language_k, probability_k``,
``uncertain`` (true/false), ``unknown_language`` (true/false) and ``unknown_score`` (how
unlike every training language the name is: inference/unknown.py), ``coverage_set`` (languages joined by ``|``, only when
coverage is asked) and ``error`` (empty when the name was classified). The column list
is built in :func:`flat_columns` alone and filled by :func:`flat_row` alone, so a new
field is one edit here. The page (serve/web/index.html) repeats this order in its
``flatColumns`` function; tests/test_schema.py and the browser test hold the two equal.

Probabilities: :data:`FLAT_DECIMALS` (4) decimals in every flat or text surface, where a
person reads them and a fifth digit is noise; JSON (the CLI's ``--format json``, the
API) keeps the value :func:`~namelab.inference.base.ranked` rounds to (6 decimals), for
programs that add them up or compare them.

JSON, one object per name: ``{"name", "normalized", "predictions": [{"language",
"probability"}, ...], "uncertain", "unknown_language", "unknown_score", "coverage_set",
"error"}`` (absent fields are
null); a table's record adds ``"input"``, the row's own columns by name, nested so that
an input column called ``name`` or ``error`` never clashes with a field.

Defaults, the same on every surface: :data:`DEFAULT_TOP_K` (3) languages, because the
runner-up is what tells a sure answer from a coin toss; :data:`DEFAULT_MIN_CONFIDENCE`
(0.5): below an even chance for its top language a calibrated model's answer is more
likely wrong than right, so it is marked uncertain.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

DEFAULT_TOP_K = 3
DEFAULT_MIN_CONFIDENCE = 0.5
FLAT_DECIMALS = 4
SET_SEPARATOR = "|"
RESULT_FIELDS = (
    "name", "normalized", "predictions", "uncertain", "unknown_language", "unknown_score", "coverage_set", "error"
)


def prediction_columns(top_k: int, *, coverage: bool) -> list[str]:
    """The columns a flat row appends to the input's own, in order."""
    columns = ["normalized"]
    for k in range(1, top_k + 1):
        columns += [f"language_{k}", f"probability_{k}"]
    columns += ["uncertain", "unknown_language", "unknown_score"]
    if coverage:
        columns.append("coverage_set")
    columns.append("error")
    return columns


def flat_columns(input_columns: Sequence[str], top_k: int, *, coverage: bool) -> list[str]:
    """Every column of a flat row: the input's, then :func:`prediction_columns`."""
    return [*input_columns, *prediction_columns(top_k, coverage=coverage)]


def column_kind(column: str) -> str:
    """What a prediction column holds: ``text``, ``probability`` or ``score`` (floats), ``flag`` (a bool), ``set`` (a list)."""
    if column.startswith("probability_"):
        return "probability"
    return {"uncertain": "flag", "unknown_language": "flag", "unknown_score": "score", "coverage_set": "set"}.get(
        column, "text"
    )


def flat_values(result: Mapping, top_k: int, *, coverage: bool, decimals: int | None = FLAT_DECIMALS) -> dict:
    """The prediction columns of one result as typed values (None where empty), probabilities to ``decimals``."""
    values: dict = {"normalized": result.get("normalized")}
    predictions = result.get("predictions") or []
    for k in range(top_k):
        hit = predictions[k] if k < len(predictions) else None
        values[f"language_{k + 1}"] = hit["language"] if hit else None
        p = hit["probability"] if hit else None
        values[f"probability_{k + 1}"] = round(float(p), decimals) if p is not None and decimals is not None else p
    values["uncertain"] = result.get("uncertain")
    values["unknown_language"] = result.get("unknown_language")
    score = result.get("unknown_score")
    values["unknown_score"] = round(float(score), decimals) if score is not None and decimals is not None else score
    if coverage:
        values["coverage_set"] = result.get("coverage_set")
    values["error"] = result.get("error")
    return values


def flat_text(value) -> str:
    """One typed cell as CSV text: empty for None, true/false, 4-decimal probabilities, sets joined by ``|``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.{FLAT_DECIMALS}f}"
    if isinstance(value, (list, tuple)):
        return SET_SEPARATOR.join(value)
    return str(value)


def flat_row(result: Mapping, top_k: int, columns: Sequence[str], inputs: Mapping | None = None) -> list[str]:
    """One flat row as text cells, in the order of ``columns`` (from :func:`flat_columns`).

    ``inputs``: the row's own columns by name (default: ``{"name": result["name"]}``).
    """
    inputs = {"name": result["name"]} if inputs is None else inputs
    values = flat_values(result, top_k, coverage="coverage_set" in columns)
    return [flat_text(inputs[c]) if c in inputs else flat_text(values[c]) for c in columns]


def json_record(result: Mapping, inputs: Mapping | None = None) -> dict:
    """One result as the JSON object of the schema (every field present, null when empty)."""
    record = {"input": dict(inputs)} if inputs is not None else {}
    record.update({key: result.get(key) for key in RESULT_FIELDS})
    return record


def model_result(result: Mapping, model: str) -> dict:
    """One model's answer in an API result (whose fields are keyed by model) as a one-model result."""
    one = {"name": result["name"], "normalized": result.get("normalized"), "error": result.get("error")}
    for key in ("predictions", "uncertain", "unknown_language", "unknown_score", "coverage_set"):
        per_model = result.get(key)
        one[key] = per_model.get(model) if per_model else None
    return one


# Characters that str.splitlines() (and many readers) take as the end of a line.
LINE_BREAKS = {
    "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x0b": "\\x0b", "\x0c": "\\x0c", "\x1c": "\\x1c",
    "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029",
}  # fmt: skip
TEXT_ESCAPES = str.maketrans({"\\": "\\\\", **LINE_BREAKS})


def text_line(result: Mapping, inputs: Sequence | None = None) -> str:
    """One result as a tab-separated line for people, in the flat order (without its newline).

    ``inputs``: the row's own cells (default: the name). Then ``(normalized)``, the ranked
    languages with 4-decimal probabilities, ``uncertain`` when it is, ``set: a|b`` with
    coverage; or ``error: why``. Tabs and line breaks inside a cell are escaped.
    """
    cells = [flat_text(v).translate(TEXT_ESCAPES) for v in ([result["name"]] if inputs is None else inputs)]
    if result.get("error"):
        return "\t".join([*cells, "error: " + result["error"].translate(TEXT_ESCAPES)])
    ranked = ", ".join(f"{p['language']} {p['probability']:.{FLAT_DECIMALS}f}" for p in result["predictions"])
    cells += [f"({result['normalized'].translate(TEXT_ESCAPES)})", ranked]
    if result.get("uncertain"):
        cells.append("uncertain")
    if result.get("unknown_language"):
        cells.append("unknown language")
    if result.get("coverage_set") is not None:
        cells.append("set: " + SET_SEPARATOR.join(result["coverage_set"]))
    return "\t".join(cells)


# JSON leaves these three unescaped, and JavaScript and str.splitlines() break lines at them.
JSON_ESCAPES = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: Mapping) -> str:
    """One JSON object on one line, with its newline: UTF-8 text, line separators escaped."""
    return json.dumps(record, ensure_ascii=False, default=str).translate(JSON_ESCAPES) + "\n"
