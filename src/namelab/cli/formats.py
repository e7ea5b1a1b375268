"""What the command line reads and prints: names files, per-name rows, and the text, CSV and JSON formats.

    names = read_names_file(Path("names.txt"))      # one name per line, rules in LINE_RULE
    rows = predict_rows(predictor, names, top_k=3)
    print(format_predictions(rows, "csv", top_k=3))
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Sequence

from ..data.corpus import MAX_NAME_LENGTH, input_error
from ..data.download import DataError


def read_names_file(path: Path) -> list[str]:
    """One name per line (see :data:`LINE_RULE`), every line kept, blank ones too, so rows line up with lines."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"input file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise DataError(f"input file {path} is not UTF-8 text ({err}); save it as UTF-8") from None
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


# Characters that str.splitlines() (and many readers) take as the end of a line.
_LINE_BREAKS = {
    "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x0b": "\\x0b", "\x0c": "\\x0c", "\x1c": "\\x1c",
    "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029",
}  # fmt: skip


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", **_LINE_BREAKS})


# JSON leaves these three unescaped, and JavaScript and str.splitlines() break lines at them.
_JSON_ESCAPES = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def format_predictions(results: list[dict], fmt: str, top_k: int) -> str:
    """JSON lines, CSV or text; ``uncertain`` and ``coverage_set`` columns appear when the rows hold them."""
    out = io.StringIO()
    flags = [key for key in ("uncertain", "coverage_set") if any(key in row for row in results)]
    if fmt == "json":
        for row in results:
            out.write(json.dumps(row, ensure_ascii=False).translate(_JSON_ESCAPES) + "\n")
    elif fmt == "csv":
        # RFC 4180: CRLF ends a record, so a field holding CR or LF is quoted.
        writer = csv.writer(out, lineterminator="\r\n")
        header = ["name", "normalized"]
        for k in range(1, top_k + 1):
            header += [f"language_{k}", f"probability_{k}"]
        writer.writerow(header + flags + ["error"])
        for row in results:
            cells = [row["name"], row.get("normalized", "")]
            preds = row.get("predictions", [])
            for k in range(top_k):
                cells += [preds[k]["language"], f"{preds[k]['probability']:.4f}"] if k < len(preds) else ["", ""]
            if "uncertain" in flags:
                cells.append("" if "uncertain" not in row else str(row["uncertain"]).lower())
            if "coverage_set" in flags:
                cells.append("|".join(row.get("coverage_set", [])))  # languages joined by |
            writer.writerow(cells + [row.get("error", "")])
    else:
        for row in results:
            name = row["name"].translate(_TEXT_ESCAPES)
            if "error" in row:
                out.write(f"{name}\terror: {row['error'].translate(_TEXT_ESCAPES)}\n")
            else:
                ranked = ", ".join(f"{p['language']} {p['probability']:.3f}" for p in row["predictions"])
                extra = "\tuncertain" if row.get("uncertain") else ""
                if "coverage_set" in row:
                    extra += "\tset: " + " | ".join(row["coverage_set"])
                out.write(f"{name}\t({row['normalized']})\t{ranked}{extra}\n")
    return out.getvalue()
