"""Rows of a CSV/TSV are reported by the line they start on, also after quoted fields that span lines.

    .venv/bin/python -m pytest tests/test_table_lines.py -q

No model: these read tables as datasets (tables.read_labelled) and stream them (tables.iter_batches).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from namelab.data import tables
from namelab.data.download import DataError
from namelab.data.tables import iter_batches, read_labelled

FORMATS = [(".csv", ","), (".tsv", "\t")]
ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


def write_lines(path: Path, records: list[list[str]], delimiter: str, ending: str) -> Path:
    """Records joined by ``delimiter``, each ended by ``ending``; a field is written as given (quotes and all)."""
    path.write_bytes("".join(delimiter.join(fields) + ending for fields in records).encode("utf-8"))
    return path


@pytest.mark.parametrize("suffix, delimiter", FORMATS)
@pytest.mark.parametrize("ending", ENDINGS, ids=list(ENDINGS))
def test_a_bad_row_after_a_field_spanning_lines_is_reported_by_its_own_line(
    tmp_path: Path, suffix: str, delimiter: str, ending: str
) -> None:
    eol = ENDINGS[ending]
    path = write_lines(tmp_path / f"names{suffix}", [
        ["name", "language"],                      # line 1
        ["Aeiou", "Alpha"],                        # line 2
        [f'"Multi{eol}line{eol}name"', "Beta"],    # lines 3-5
        ["Bdkgt", "Beta", "surplus"],              # line 6: a field too many
        ["Lmnrs", "Gamma"],                        # line 7
        [f'"Two{eol}lines"', "Gamma", "surplus"],  # lines 8-9: a field too many
        ["Aeiou", "Alpha", "surplus"],             # line 10
    ], delimiter, eol)
    with pytest.raises(DataError, match=r"3 row\(s\) with a number of fields other than the header's 2: "
                                        r"line 6, line 8, line 10; fix or remove"):
        read_labelled(path, "name", "language")


@pytest.mark.parametrize("suffix, delimiter", FORMATS)
@pytest.mark.parametrize("ending", ENDINGS, ids=list(ENDINGS))
def test_rows_without_a_label_are_reported_by_the_line_they_start_on(
    tmp_path: Path, suffix: str, delimiter: str, ending: str
) -> None:
    eol = ENDINGS[ending]
    path = write_lines(tmp_path / f"names{suffix}", [
        ["name", "language"],               # line 1
        ["Aeiou", "Alpha"],                 # line 2
        [f'"Two{eol}lines"', "Beta"],       # lines 3-4
        [""],                               # line 5: blank
        ["Lmnrs", ""],                      # line 6: no label
        ["  "],                             # line 7: blank but for spaces
        ["", f'"Ga{eol}m{eol}ma"'],         # lines 8-10: no name
        ["Bdkgt", '"Beta"'],                # line 11
        ["", "Alpha"],                      # line 12: no name
    ], delimiter, eol)
    with pytest.raises(DataError, match=r"3 row\(s\) with an empty 'name' or 'language': "
                                        r"line 6, line 8, line 12; fill or remove"):
        read_labelled(path, "name", "language")


def test_every_row_keeps_its_line_after_a_header_and_fields_that_span_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "names.csv", [
        ["name", "language", '"a note\r\nover two lines"'],  # lines 1-2
        ["Aeiou", "Alpha", ""],                               # line 3
        ["Bdkgt", "Beta", '"one\rtwo\nthree\r\nfour"'],       # lines 4-7: a lone CR ends a line too
        ["", "", ""],                                         # line 8: no name and no label, skipped
        ['"Lm""nrs"', "Gamma", '"x"'],                        # line 9
    ], ",", "\n")
    rows = read_labelled(path, "name", "language")
    assert [(row.where, row.name) for row in rows] == [("line 3", "Aeiou"), ("line 4", "Bdkgt"), ("line 9", 'Lm"nrs')]


def test_lines_are_counted_across_the_reader_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 64 bytes: most of the fields that span lines straddle a block boundary.
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 64)
    records = [["name", "language", "note"]]
    for i in range(60):
        records.append([f"Name{i}", "Alpha" if i % 2 else "Beta", f'"note {i}\nwritten\non three lines"'])
    records.append(["Lmnrs", "", "last"])  # line 2 + 60 * 3 = 182
    path = write_lines(tmp_path / "names.csv", records, ",", "\n")
    with pytest.raises(DataError, match=r"1 row\(s\) with an empty 'name' or 'language': line 182; fill"):
        read_labelled(path, "name", "language")
    batches = list(iter_batches(path, chunk_rows=16))
    notes = pa.Table.from_batches(batches).column("note").to_pylist()
    assert notes == [f"note {i}\nwritten\non three lines" for i in range(60)] + ["last"]


def test_spans_lines_finds_quoted_line_breaks_only(tmp_path: Path) -> None:
    plain = write_lines(tmp_path / "plain.csv", [["name", "note"], ["Aeiou", "x"]], ",", "\r\n")
    quoted = write_lines(tmp_path / "quoted.csv", [['"name"', '"note"'], ['"Ae""iou"', '"x, y"']], ",", "\n")
    spanning = write_lines(tmp_path / "spanning.tsv", [["name", "note"], ["Aeiou", '"x\ny"']], "\t", "\n")
    header = write_lines(tmp_path / "header.csv", [["name", '"no\nte"'], ["Aeiou", "x"]], ",", "\n")
    parquet = tmp_path / "table.parquet"
    pq.write_table(pa.table({"name": ["Aeiou"], "note": ["x\ny"]}), parquet)
    assert not tables.spans_lines(plain) and not tables.spans_lines(quoted) and not tables.spans_lines(parquet)
    assert tables.spans_lines(spanning) and tables.spans_lines(header)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
@pytest.mark.parametrize("ending", ENDINGS, ids=list(ENDINGS))
def test_blank_lines_before_the_header_are_skipped_and_counted(tmp_path: Path, bom: bytes, ending: str) -> None:
    eol = ENDINGS[ending]
    text = eol * 2 + eol.join(["name,language", "Aeiou,Alpha", "", "Bdkgt,Beta"]) + eol
    path = tmp_path / "names.csv"
    path.write_bytes(bom + text.encode("utf-8"))
    rows = read_labelled(path, "name", "language")
    assert [(r.where, r.name, r.label) for r in rows] == [("line 4", "Aeiou", "Alpha"), ("line 6", "Bdkgt", "Beta")]
    path.write_bytes(bom + (text + "Lmnrs,Gamma,surplus" + eol).encode("utf-8"))
    with pytest.raises(DataError, match=r"other than the header's 2: line 7;"):
        read_labelled(path, "name", "language")
