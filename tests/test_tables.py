"""Tables as datasets (CSV, TSV, Parquet) and streaming prediction over tables.

    .venv/bin/python -m pytest tests/test_tables.py -q
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from helpers import make_names_folder, separable_names, trained_run_folder

from namelab.cli.commands import main
from namelab.data.corpus import Corpus
from namelab.data.download import DataError
from namelab.inference.base import Predictor
from namelab.inference.load import load_predictor
from namelab.inference.schema import RESULT_FIELDS, flat_columns
from namelab.inference.stream import TableOptions, predict_table
from namelab.runs.checkpoint import write_manifest

KNOWN = {"Aeiou": "Alpha", "Bdkgt": "Beta", "Lmnrs": "Gamma"}


def write_table(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as the table its suffix names (every value as text)."""
    table = pa.Table.from_pylist(rows)
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=16)
    else:
        delimiter = "\t" if path.suffix == ".tsv" else ","
        pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(delimiter=delimiter, quoting_style="needed"))
    return path


def labelled_rows(names: dict[str, list[str]]) -> list[dict]:
    rows = [{"id": str(i), "surname": name, "country": language} for i, (language, group) in
            enumerate(names.items()) for name in group]
    random.Random(0).shuffle(rows)  # a table is not grouped by language
    return rows


@pytest.fixture(scope="module")
def names() -> dict[str, list[str]]:
    names = separable_names(per_class=20)
    names["Alpha"] += ["Ab\u00e9", "Shared", "Aeiou", "AEIOU"]  # a changed character, a shared name, duplicates
    names["Beta"] += ["Shared", "4242"]  # ... and a name with no letters
    return names


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run_folder(tmp_path_factory, "gru", epochs=6)


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    return load_predictor(run_dir)


# -- tables as datasets ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_table_corpus_equals_the_folder_corpus(tmp_path: Path, names: dict, suffix: str) -> None:
    folder = Corpus.from_folder(make_names_folder(tmp_path / "names", names))
    table = Corpus.from_table(
        write_table(tmp_path / f"names{suffix}", labelled_rows(names)), name_column="surname", label_column="country"
    )
    assert table.labels == folder.labels
    assert sorted(table.pairs) == sorted(folder.pairs)  # same normalization and deduplication
    assert table.stats.dedup_counts == folder.stats.dedup_counts
    assert table.stats.shared_names == folder.stats.shared_names
    assert [s.split(": ")[1] for s in table.stats.skipped_lines] == ["'4242'"]
    where = "row" if suffix == ".parquet" else "line"
    assert table.stats.skipped_lines[0].startswith(f"{where} ") and "(Beta)" in table.stats.skipped_lines[0]
    for part in ("train", "val", "test"):  # the split depends on the pairs, not on their order
        assert sorted(getattr(table.split(seed=3), part), key=repr) == sorted(
            getattr(folder.split(seed=3), part), key=repr
        )


def test_load_dispatches_folder_and_table(tmp_path: Path, names: dict) -> None:
    folder = make_names_folder(tmp_path / "names", names)
    rows = [{"name": r["surname"], "language": r["country"]} for r in labelled_rows(names)]
    table = write_table(tmp_path / "names.csv", rows)
    assert sorted(Corpus.load(folder).pairs) == sorted(Corpus.load(table).pairs)  # default columns: name, language


def test_missing_column_names_the_columns_and_the_option(tmp_path: Path, names: dict) -> None:
    path = write_table(tmp_path / "names.csv", labelled_rows(names))
    with pytest.raises(DataError, match=r"no column 'name' \(its columns: 'id', 'surname', 'country'\); pass --name-column"):
        Corpus.from_table(path, label_column="country")
    with pytest.raises(DataError, match="no column 'language'.*pass --label-column"):
        Corpus.from_table(path, name_column="surname")


def test_bad_rows_are_reported_by_line_first_few_only(tmp_path: Path) -> None:
    lines = ["name,language", "Aeiou,Alpha", "Bdkgt,Beta"]
    lines += [f"Extra{i},Alpha,surplus" for i in range(8)]  # lines 4..11: one field too many
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        Corpus.from_table(path)
    message = str(err.value)
    assert "8 row(s) with a number of fields other than the header's 2: line 4, line 5, line 6, line 7, line 8" in message
    assert "and 3 more" in message and "line 9" not in message


def test_row_without_label_is_reported_by_line_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("name,language\nAeiou,Alpha\n\nBdkgt,Beta\nLmnrs,\n,Gamma\n")
    with pytest.raises(DataError, match=r"2 row\(s\) with an empty 'name' or 'language': line 5, line 6; fill or remove"):
        Corpus.from_table(path)


def test_a_table_that_is_not_utf8_is_a_data_error_that_says_so(tmp_path: Path, predictor: Predictor) -> None:
    path = tmp_path / "names.csv"
    path.write_bytes(b"name,language\nAe\xffiou,Alpha\nBdkgt,Beta\n")
    with pytest.raises(DataError, match="is not UTF-8 text.*save it as UTF-8"):
        Corpus.from_table(path)
    with pytest.raises(DataError, match="is not UTF-8 text.*save it as UTF-8"):
        predict_table(predictor, path, tmp_path / "out.csv", TableOptions(), progress=False)
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".*.tmp"))


def test_one_label_is_not_a_classifier(tmp_path: Path) -> None:
    path = write_table(tmp_path / "names.parquet", [{"name": "Aeiou", "language": "Alpha"}])
    with pytest.raises(DataError, match="1 distinct value.*at least two languages"):
        Corpus.from_table(path)


def test_unknown_suffix_and_missing_file_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Corpus.from_table(tmp_path / "absent.csv")
    (tmp_path / "names.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match=r"give a \.csv, \.tsv or \.parquet file"):
        Corpus.from_table(tmp_path / "names.xlsx")


def test_cli_data_train_evaluate_on_a_table(tmp_path: Path, names: dict, capsys: pytest.CaptureFixture) -> None:
    table = write_table(tmp_path / "names.parquet", labelled_rows(names))
    columns = ["--name-column", "surname", "--label-column", "country"]
    assert main(["data", "--data", str(table), *columns]) == 0
    out = capsys.readouterr().out
    assert f"data table: {table}" in out and "Shared: Alpha, Beta" in out and "'4242'" in out
    run = tmp_path / "run"
    argv = ["train", "--data", str(table), *columns, "--out", str(run), "--epochs", "1", "--hidden-size", "8",
            "--threads", "1"]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == ["Alpha", "Beta", "Gamma"]
    assert len(config["dataset_sha256"]) == 64
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(table), *columns, "--json", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == config["n_test"]
    assert main(["evaluate", str(run), "--data", str(table), "--json"]) == 1  # default columns are absent
    assert "no column 'name'" in capsys.readouterr().err


def test_data_and_data_dir_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "--data", str(tmp_path), "--data-dir", str(tmp_path)]) == 1
    assert "not both" in capsys.readouterr().err


# -- streaming prediction ---------------------------------------------------------------------


def people(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of three columns whose ``surname`` is known, unusable, or unicode."""
    rng = random.Random(seed)
    choices = list(KNOWN) + ["", "123", "M\u00fcller", "O'Brien, Jr", "\u0418\u0432\u0430\u043d\u043e\u0432"]
    return [{"id": str(i), "surname": rng.choice(choices), "city": f"city {i % 7}"} for i in range(n)]


class CountingPredictor:
    """A Predictor that records how many names each call to ``probabilities`` gets."""

    def __init__(self, predictor: Predictor):
        self.inner, self.labels, self.calls = predictor, predictor.labels, []

    def probabilities(self, normalized):
        self.calls.append(len(normalized))
        return self.inner.probabilities(normalized)

    def __getattr__(self, name):  # describe, with_prior, unknown_scores...: the real predictor's
        return getattr(self.inner, name)


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":  # records: the row's own columns under "input", then the schema's fields
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            assert list(record) == ["input", *RESULT_FIELDS]
            row = {**record["input"], "normalized": record["normalized"], "error": record["error"]}
            for k, hit in enumerate(record["predictions"] or [{"language": None, "probability": None}] * 2, 1):
                row |= {f"language_{k}": hit["language"], f"probability_{k}": hit["probability"]}
            flags = {key: record[key] for key in ("uncertain", "unknown_language", "unknown_score", "coverage_set")}
            rows.append(row | flags)
        return rows
    delimiter = "\t" if path.suffix == ".tsv" else ","
    options = pa_csv.ConvertOptions(
        strings_can_be_null=True, quoted_strings_can_be_null=False, column_types={"id": pa.string()}
    )  # null is written unquoted, an empty name as ""
    return pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(delimiter=delimiter), convert_options=options).to_pylist()


@pytest.mark.parametrize("in_suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("out_suffix", [".parquet", ".csv", ".tsv", ".jsonl"])
def test_streaming_predict_keeps_every_row_in_order(
    tmp_path: Path, predictor: Predictor, in_suffix: str, out_suffix: str
) -> None:
    rows = people(53)
    source = write_table(tmp_path / f"people{in_suffix}", rows)
    counting = CountingPredictor(predictor)
    out = tmp_path / f"out{out_suffix}"
    summary = predict_table(counting, source, out, TableOptions("surname", top_k=2), chunk_rows=8, progress=False)
    expected = predictor.predict([row["surname"] for row in rows], top_k=2, min_confidence=0.5)
    if out_suffix != ".jsonl":
        assert list(read_rows(out)[0]) == flat_columns(list(rows[0]), 2, coverage=False)
    got = read_rows(out)
    assert summary.rows == len(got) == len(rows)
    assert summary.errors == sum("error" in e for e in expected) > 0
    assert max(counting.calls) <= 8 and len(counting.calls) >= len(rows) // 8  # one chunk at a time
    for row, out_row, want in zip(rows, got, expected):
        assert {k: str(out_row[k]) for k in row} == row  # every input column, in order
        if "error" in want:
            assert out_row["error"] == want["error"] and out_row["language_1"] is None
            continue
        assert out_row["error"] is None and out_row["normalized"] == want["normalized"]
        assert out_row["language_1"] == want["predictions"][0]["language"]
        # JSON keeps the 6 decimals; CSV, TSV and Parquet round to 4
        decimals = 6 if out_suffix == ".jsonl" else 4
        assert out_row["probability_1"] == round(want["predictions"][0]["probability"], decimals)
        assert out_row["language_2"] == want["predictions"][1]["language"]
        assert out_row["uncertain"] == want["uncertain"]
        if row["surname"] in KNOWN:
            assert out_row["language_1"] == KNOWN[row["surname"]]


def test_uncertainty_and_coverage_columns(tmp_path: Path, run_dir: Path) -> None:
    calibrated = tmp_path / "run"
    shutil.copytree(run_dir, calibrated)
    config = json.loads((calibrated / "config.json").read_text())
    config["calibration"] = {"temperature": 1.5, "conformal_scores": [i / 20 for i in range(20)]}
    (calibrated / "config.json").write_text(json.dumps(config))
    write_manifest(calibrated)  # the edited config is the run's own
    predictor = load_predictor(calibrated)
    rows = people(20)
    source = write_table(tmp_path / "people.csv", rows)
    options = TableOptions("surname", top_k=1, min_confidence=0.9, coverage=0.9)
    predict_table(predictor, source, tmp_path / "out.parquet", options, chunk_rows=6, progress=False)
    got = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = predictor.predict([row["surname"] for row in rows], top_k=1, min_confidence=0.9, coverage=0.9)
    assert [r.get("uncertain") for r in got] == [e.get("uncertain") for e in expected]
    assert [r.get("coverage_set") for r in got] == [e.get("coverage_set") for e in expected]
    predict_table(predictor, source, tmp_path / "out.csv", options, chunk_rows=6, progress=False)
    text_sets = [r["coverage_set"] for r in read_rows(tmp_path / "out.csv")]
    assert text_sets == [None if e.get("coverage_set") is None else "|".join(e["coverage_set"]) for e in expected]


def test_cli_predict_table_with_progress_and_errors(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    source = write_table(tmp_path / "people.tsv", people(30))
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(run_dir), "--input", str(source), "--name-column", "surname", "--output", str(out),
            "--chunk-rows", "7", "--threads", "1"]
    assert main(argv) == 0
    assert len(out.read_text().splitlines()) == 30
    assert "30 rows" in capsys.readouterr().err
    assert main([*argv, "--format", "csv"]) == 1  # --format must agree with the output's suffix
    assert "does not match --output" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(out)]) == 1
    assert "no column 'name'" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--input", str(source), "--name-column", "surname",
                 "--output", str(source)]) == 1
    assert "is the --input file" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--input", str(source), "--name-column", "surname",
                 "--output", str(tmp_path / "out.xlsx")]) == 1
    assert "cannot tell the output format" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))  # a refused or failed output leaves nothing behind


def test_progress_bar_shows_rows_and_names_per_second(
    tmp_path: Path, predictor: Predictor, capsys: pytest.CaptureFixture
) -> None:
    source = write_table(tmp_path / "people.csv", people(40))
    predict_table(predictor, source, tmp_path / "out.csv", TableOptions("surname"), chunk_rows=10, progress=True)
    err = capsys.readouterr().err
    assert "rows" in err and "names/s" in err


def test_input_columns_that_clash_with_the_output_are_refused(tmp_path: Path, predictor: Predictor) -> None:
    source = write_table(tmp_path / "people.csv", [{"surname": "Aeiou", "error": "x"}])
    with pytest.raises(DataError, match="already has column.*'error'"):
        predict_table(predictor, source, tmp_path / "out.csv", TableOptions("surname"), progress=False)


def test_csv_to_stdout(tmp_path: Path, run_dir: Path, capsysbinary: pytest.CaptureFixture) -> None:
    source = write_table(tmp_path / "people.csv", people(5))
    assert main(["predict", str(run_dir), "--input", str(source), "--name-column", "surname", "--threads", "1"]) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert lines[0] == ",".join(flat_columns(["id", "surname", "city"], 3, coverage=False))  # the defaults: top 3
    assert len(lines) == 6


@pytest.mark.parametrize("fmt", ["json", "text", "tsv"])
def test_a_table_takes_every_format_on_stdout(
    tmp_path: Path, run_dir: Path, capsysbinary: pytest.CaptureFixture, fmt: str
) -> None:
    rows = people(5)
    source = write_table(tmp_path / "people.csv", rows)
    argv = ["predict", str(run_dir), "--input", str(source), "--name-column", "surname", "--format", fmt]
    assert main([*argv, "--threads", "1"]) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [r["input"] for r in records] == rows and [r["name"] for r in records] == [r["surname"] for r in rows]
    elif fmt == "tsv":
        assert lines[0].split("\t") == flat_columns(list(rows[0]), 3, coverage=False) and len(lines) == 6
    else:
        assert [line.split("\t")[:3] for line in lines] == [list(row.values()) for row in rows]


def test_resume_command_of_a_table_run_names_the_table_and_its_columns(tmp_path: Path, names: dict) -> None:
    import shlex

    from namelab.cli.commands import build_parser
    from namelab.runs.config import TrainConfig
    from namelab.train.loop import train_command

    table = write_table(tmp_path / "names.csv", labelled_rows(names))
    corpus = Corpus.from_table(table, name_column="surname", label_column="country")
    words = shlex.split(train_command(TrainConfig(epochs=3), tmp_path / "run", table, corpus.columns))
    args = build_parser().parse_args(words[1:])
    assert (args.data, args.name_column, args.label_column, args.resume) == (table, "surname", "country", True)
    assert Corpus.from_folder(make_names_folder(tmp_path / "folder", names)).columns is None


# -- what sits at a table's --output is never destroyed (the rules of namelab.inference.output) -------


def test_a_symlinked_table_output_is_followed(tmp_path: Path, run_dir: Path) -> None:
    source = write_table(tmp_path / "people.csv", people(12))
    target = tmp_path / "real" / "predictions.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    assert main(["predict", str(run_dir), "--input", str(source), "--name-column", "surname",
                 "--output", str(link), "--threads", "1"]) == 0
    assert link.is_symlink() and link.resolve() == target
    assert len(read_rows(target)) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "people.csv", "real"]
    assert [p.name for p in target.parent.iterdir()] == ["predictions.csv"]


@pytest.mark.parametrize("how", ["same-path", "symlink", "hard-link"])
def test_a_table_output_equal_to_its_input_is_refused(tmp_path: Path, run_dir: Path, capsys, how: str) -> None:
    source = write_table(tmp_path / "people.csv", people(5))
    before = source.read_bytes()
    output = {"same-path": source, "symlink": tmp_path / "alias.csv", "hard-link": tmp_path / "hard.csv"}[how]
    if how == "symlink":
        output.symlink_to(source)
    elif how == "hard-link":
        os.link(source, output)
    assert main(["predict", str(run_dir), "--input", str(source), "--name-column", "surname",
                 "--output", str(output)]) == 1
    assert "is the --input file" in capsys.readouterr().err
    assert source.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604])
@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_an_existing_table_output_keeps_its_mode(tmp_path: Path, predictor: Predictor, mode: int, suffix: str) -> None:
    source = write_table(tmp_path / "people.csv", people(6))
    out = tmp_path / f"out{suffix}"
    out.write_text("old\n")
    out.chmod(mode)
    predict_table(predictor, source, out, TableOptions("surname"), progress=False)
    assert stat.S_IMODE(os.stat(out).st_mode) == mode and len(read_rows(out)) == 6


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_new_table_output_gets_the_umask_mode(tmp_path: Path, predictor: Predictor, umask: int) -> None:
    source = write_table(tmp_path / "people.csv", people(6))
    old = os.umask(umask)
    try:
        predict_table(predictor, source, tmp_path / "new.csv", TableOptions("surname"), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.csv").st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_fifo_table_output_is_written_through_not_replaced(tmp_path: Path, predictor: Predictor, suffix: str) -> None:
    source = write_table(tmp_path / "people.csv", people(9))
    fifo = tmp_path / f"out{suffix}"
    os.mkfifo(fifo)
    received: list[bytes] = []
    # daemon: should the FIFO be replaced, the reader blocks forever and must not hold up the exit
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    predict_table(predictor, source, fifo, TableOptions("surname"), progress=False)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    reader.join(timeout=30)
    copy = tmp_path / f"copy{suffix}"
    copy.write_bytes(received[0])
    assert [row["surname"] for row in read_rows(copy)] == [row["surname"] for row in people(9)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["people.csv", fifo.name, copy.name])
def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path, predictor: Predictor) -> None:
    source = write_table(tmp_path / "people.csv", people(12))
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    predict_table(predictor, source, link, TableOptions("surname"), chunk_rows=5, progress=False)
    assert link.is_symlink() and len(target.read_text().splitlines()) == 12
