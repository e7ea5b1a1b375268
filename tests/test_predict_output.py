"""Tests for what ``namelab predict`` writes: outputs that never destroy anything, one row per line.

    .venv/bin/python -m pytest tests/test_predict_output.py -q
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from helpers import trained_run_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from namelab import Predictor
from namelab.cli.commands import main
from namelab.cli.formats import format_predictions, predict_rows, read_names_file
from namelab.data.corpus import MAX_NAME_LENGTH
from namelab.inference.load import load_predictor


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run_folder(tmp_path_factory, "gru", epochs=2)


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    return load_predictor(run_dir)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- what sits at --output is never destroyed ------------------------------------------------


def test_a_fifo_is_written_through_not_replaced(capsys, run_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "x.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code, out, err = run_cli(capsys, "predict", run_dir, "Aeiou", "Bdkgt", "--format", "json", "--output", fifo)
    reader.join(timeout=30)
    assert code == 0 and err == ""
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    rows = [json.loads(line) for line in received[0].decode().splitlines()]
    assert [row["name"] for row in rows] == ["Aeiou", "Bdkgt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.fifo"]


def test_a_character_device_is_written_through_not_replaced(capsys, run_dir: Path, tmp_path: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the /dev/null device, made here
    except PermissionError:
        pytest.skip("making a device node needs root; the FIFO test covers writing through")
    code, _, err = run_cli(capsys, "predict", run_dir, "Aeiou", "--output", device)
    assert code == 0 and err == ""
    assert stat.S_ISCHR(os.stat(device).st_mode) and os.stat(device).st_rdev == os.makedev(1, 3)


def test_a_symlink_is_followed_to_its_target(capsys, run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "--format", "csv", "--output", link)
    assert code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes().startswith(b"name,normalized,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


@pytest.mark.parametrize("how", ["same-path", "symlink", "hard-link"])
def test_output_equal_to_input_is_refused(capsys, run_dir: Path, tmp_path: Path, how: str) -> None:
    source = tmp_path / "names.txt"
    source.write_text("Aeiou\nBdkgt\n")
    output = {"same-path": source, "symlink": tmp_path / "alias.txt", "hard-link": tmp_path / "hard.txt"}[how]
    if how == "symlink":
        output.symlink_to(source)
    elif how == "hard-link":
        os.link(source, output)
    code, out, err = run_cli(capsys, "predict", run_dir, "--input", source, "--output", output)
    assert code == 1 and out == "" and "is the --input file" in err
    assert source.read_text() == "Aeiou\nBdkgt\n"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_umask_mode(capsys, run_dir: Path, tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        code, _, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "--output", tmp_path / "new.txt")
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o600])
def test_an_existing_file_keeps_its_mode(capsys, run_dir: Path, tmp_path: Path, mode: int) -> None:
    target = tmp_path / "kept.txt"
    target.write_text("old\n")
    target.chmod(mode)
    code, _, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "--output", target)
    assert code == 0 and "Aeiou" in target.read_text()
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_a_folder_at_output_is_refused_with_a_message(capsys, run_dir: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "predict", run_dir, "Aeiou", "--output", tmp_path)
    assert code == 1 and "is a folder" in err and tmp_path.is_dir()


# -- one row per line ------------------------------------------------------------------------


def test_a_carriage_return_inside_a_name_is_quoted_in_csv(capsys, run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "names.txt"
    source.write_bytes(b"Smith\rJones\nNakamura\n")
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", source, "--format", "csv")
    assert code == 0
    header, *rows = csv.reader(io.StringIO(out, newline=""))
    assert [row[0] for row in rows] == ["Smith\rJones", "Nakamura"]
    assert out.endswith("\r\n") and '"Smith\rJones"' in out


def test_json_lines_escape_unicode_line_separators(capsys, run_dir: Path) -> None:
    names = ["Ab\u2028cd", "Ef\u2029gh", "Ij\x85kl", "Mn\rop"]
    code, out, _ = run_cli(capsys, "predict", run_dir, *names, "--format", "json")
    assert code == 0
    assert "\u2028" not in out and "\u2029" not in out and "\x85" not in out and "\r" not in out
    lines = out.splitlines()
    assert [json.loads(line)["name"] for line in lines] == names


HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list('\r\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",\'\\ ;|\x00\ufeff\u0301\ufdfa')),
        st.characters(blacklist_categories=("Cs",)),  # a UTF-8 file holds no lone surrogates
    ),
    max_size=12,
).filter(lambda s: "\n" not in s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(HOSTILE, max_size=6), trailing_newline=st.booleans(), fmt=st.sampled_from(["csv", "json", "text"]))
def test_rows_out_equal_lines_in_for_hostile_input(predictor, tmp_path, lines, trailing_newline, fmt) -> None:
    source = tmp_path / "hostile.txt"
    text = "".join(line + "\n" for line in lines)
    if not trailing_newline and lines and lines[-1]:
        text = text[:-1]  # the last line may end without a newline (an empty one cannot)
    source.write_bytes(b"Aeiou\n" + text.encode("utf-8"))  # a first line: a leading U+FEFF stays in a name
    expected = ["Aeiou", *[line.removesuffix("\r") for line in lines]]
    names = read_names_file(source)
    assert names == expected
    out = format_predictions(predict_rows(predictor, names, 2), fmt, 2)
    if fmt == "csv":
        header, *records = csv.reader(io.StringIO(out, newline=""))
        assert [record[0] for record in records] == expected
    elif fmt == "json":
        assert [json.loads(line)["name"] for line in out.splitlines()] == expected
    else:
        assert len(out.splitlines()) == len(expected)
        assert out.count("\n") == len(expected)


# -- names refused one at a time ---------------------------------------------------------------


def test_a_name_with_invalid_utf8_is_an_error_row_not_a_failed_batch(capsys, run_dir: Path) -> None:
    # What Python makes of the argument bytes b"Smi\xffth" (surrogate escapes).
    code, out, err = run_cli(capsys, "predict", run_dir, "Aeiou", "Smi\udcffth", "\ud800", "Bdkgt", "--format", "json")
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["name"] for row in rows] == ["Aeiou", "Smi\\xffth", "\\ud800", "Bdkgt"]
    assert "not valid UTF-8" in rows[1]["error"] and "not valid UTF-8" in rows[2]["error"]
    assert rows[0]["predictions"] and rows[3]["predictions"]


def test_a_huge_line_is_refused_without_reaching_the_model(capsys, run_dir, tmp_path, monkeypatch) -> None:
    source = tmp_path / "names.txt"
    source.write_bytes(b"a" * 1_000_000 + b"\nAeiou\n" + "\ufdfa".encode() * 10 + b"\n" + b"b" * 70 + b"\n")
    seen: list[int] = []
    original = Predictor.predict

    def spy(self, names, top_k=3, **options):
        seen.extend(len(name) for name in names)
        return original(self, names, top_k=top_k, **options)

    monkeypatch.setattr(Predictor, "predict", spy)
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", source, "--format", "json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4
    assert "1,000,000 characters long" in rows[0]["error"] and str(MAX_NAME_LENGTH) in rows[0]["error"]
    assert rows[1]["predictions"]
    assert "becomes 290 characters once transliterated" in rows[2]["error"]  # 10 characters, 290 letters
    assert "becomes 70 characters" in rows[3]["error"] and str(MAX_NAME_LENGTH) in rows[3]["error"]
    assert max(seen) <= 70  # the 1 MB line never reached normalization or the model


def test_a_byte_that_is_not_utf8_spoils_its_own_line_only(tmp_path, capsys):
    import json

    from namelab.cli.commands import main

    path = tmp_path / "names.txt"
    path.write_bytes("Nakamura\n".encode() + b"Sch\xffmidt\n" + "Dvořák\n".encode())
    assert main(["predict", "--input", str(path), "--format", "json", "--top-k", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["error"] is None for row in rows] == [True, False, True]
    assert "not valid UTF-8" in rows[1]["error"] and rows[1]["name"] == "Sch\\xffmidt"
    assert rows[0]["predictions"][0]["language"] == "Japanese"
