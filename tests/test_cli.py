"""Tests for the ``namelab`` command line, run in-process through ``namelab.cli.commands([...])``.

    .venv/bin/python -m pytest tests/test_cli.py -q

One tiny run is trained per module on a fake dataset whose classes one character tells
apart, so its predictions for names like "Aeiou" are known.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_names_folder, one_thread, separable_names, train_tiny_run

from namelab.cli.commands import main
from namelab.data.corpus import Corpus, normalize
from namelab.inference.base import ranked
from namelab.inference.load import load_predictor
from namelab.inference.schema import RESULT_FIELDS, json_record

KNOWN = {"Aeiou": "Alpha", "Bdkgt": "Beta", "Lmnrs": "Gamma"}  # one alphabet each (helpers.SEPARABLE_ALPHABETS)
LABELS = ["Alpha", "Beta", "Gamma"]

# Blank, whitespace-only and digit lines, unicode names, CRLF and LF endings, a byte order
# mark, and a last line without a newline: every line must get exactly one output row.
INPUT_BYTES = (
    "\ufeffAeiou\r\n\r\n   \r\n123\r\nM\u00fcller\r\n\u0418\u0432\u0430\u043d\u043e\u0432\n\tBdkgt  \nLmnrs"
).encode()
INPUT_LINES = ["Aeiou", "", "   ", "123", "M\u00fcller", "\u0418\u0432\u0430\u043d\u043e\u0432", "\tBdkgt  ", "Lmnrs"]
UNUSABLE = {1, 2, 3}  # indices of INPUT_LINES that cannot be classified


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = separable_names(per_class=20)
    names["Alpha"] += ["Ab\u00e9", "Shared"]  # a changed character, and a name in two languages
    names["Beta"] += ["Shared", "4242"]  # ... and a line with no letters
    return make_names_folder(tmp_path_factory.mktemp("names"), names)


@pytest.fixture(scope="module")
def run_dir(names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "gru"
    train_tiny_run(names_dir, out, cell="gru", epochs=6)
    return out


@pytest.fixture()
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_bytes(INPUT_BYTES)
    return path


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> list[dict]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# --- data ---------------------------------------------------------------------------------


def test_data_describes_the_dataset(capsys, names_dir: Path) -> None:
    code, out, err = run_cli(capsys, "data", "--data-dir", names_dir)
    assert code == 0 and err == ""
    assert str(names_dir) in out
    for label, raw, distinct in (("Alpha", 22, 22), ("Beta", 22, 21), ("Gamma", 20, 20)):
        assert any(line.split() == [label, str(raw), str(distinct)] for line in out.splitlines()), label
    assert "names in more than one language: 1" in out and "Shared: Alpha, Beta" in out
    assert "'\u00e9'->'e'" in out
    assert "4242" in out  # the skipped line is reported, not silently dropped
    sizes = Corpus.from_folder(names_dir).split(seed=0).sizes()
    assert f"train {sizes['n_train']}, validation {sizes['n_val']}, test {sizes['n_test']}" in out


def test_data_reads_namelab_data(capsys, names_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMELAB_DATA", str(names_dir))
    code, out, _ = run_cli(capsys, "data")
    assert code == 0 and str(names_dir) in out


def test_data_with_a_missing_folder_fails_with_a_message(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "data", "--data-dir", tmp_path / "absent")
    assert code == 1 and out == ""
    assert err.startswith("error:") and "absent" in err and "does not exist" in err


# --- train --------------------------------------------------------------------------------


def test_train_writes_a_run(capsys, names_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    with one_thread():
        code, out, _ = run_cli(
            capsys, "train", "--data-dir", names_dir, "--out", out_dir, "--cell", "rnn",
            "--epochs", "1", "--hidden-size", "16", "--batch-size", "16", "--device", "cpu", "--seed", "3",
        )  # fmt: skip
    assert code == 0
    assert "test accuracy" in out and f"run written to {out_dir}" in out
    assert {p.name for p in out_dir.iterdir()} == {
        "config.json", "model.safetensors", "history.json", "metrics.json", "manifest.json", "unknown.json",
        "unknown.safetensors", "model-card.md",
    }
    config = json.loads((out_dir / "config.json").read_text())
    assert config["config"]["cell"] == "rnn" and config["config"]["hidden_size"] == 16
    assert config["config"]["seed"] == 3 and config["dataset_sha256"]


def test_train_passes_label_smoothing_and_char_dropout(capsys, names_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    with one_thread():
        code, _, _ = run_cli(
            capsys, "train", "--data-dir", names_dir, "--out", out_dir, "--epochs", "1", "--hidden-size", "8",
            "--device", "cpu", "--label-smoothing", "0.1", "--char-dropout", "0.05",
        )  # fmt: skip
    assert code == 0
    config = json.loads((out_dir / "config.json").read_text())["config"]
    assert config["label_smoothing"] == 0.1 and config["char_dropout"] == 0.05


def test_train_builds_the_accuracy_options_and_the_run_predicts_with_them(capsys, names_dir: Path, tmp_path: Path):
    out_dir = tmp_path / "run"
    with one_thread():
        code, _, _ = run_cli(
            capsys, "train", "--data-dir", names_dir, "--out", out_dir, "--epochs", "2", "--hidden-size", "8",
            "--device", "cpu", "--cell", "gru", "--bidirectional", "--embedding-dim", "4", "--ngram-buckets", "64",
        )  # fmt: skip
    assert code == 0
    config = json.loads((out_dir / "config.json").read_text())["config"]
    assert (config["bidirectional"], config["embedding_dim"], config["ngram_buckets"]) == (True, 4, 64)
    predictor = load_predictor(out_dir)
    model = predictor.model
    assert model.config.ngram_buckets == 64 and model.ngram.table.weight.abs().sum() > 0  # the channel learned
    assert len(predictor.predict(["Nakamura"], top_k=3)[0]["predictions"]) == 3


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hidden-size", "0", "--hidden-size must be at least 1, got 0"),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
        ("--epochs", "-2", "--epochs must be at least 1, got -2"),
        ("--lr", "-0.1", "--lr must be a number above 0"),
        ("--dropout", "1", "--dropout must be a number from 0 up to (not including) 1"),
        ("--weight-decay", "-1", "--weight-decay must be a number of at least 0"),
        ("--label-smoothing", "2", "--label-smoothing must be"),
        ("--ngram-buckets", "-1", "--ngram-buckets must be at least 0, got -1"),
    ],
)
def test_train_refuses_bad_numbers_with_a_message(capsys, names_dir: Path, tmp_path: Path, option, value, message) -> None:
    code, _, err = run_cli(capsys, "train", "--data-dir", names_dir, "--out", tmp_path / "run", option, value)
    assert code == 1 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_with_a_missing_dataset_fails_with_a_message(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "train", "--data-dir", tmp_path / "absent", "--out", tmp_path / "run")
    assert code == 1 and "does not exist" in err
    assert not (tmp_path / "run").exists()


# --- evaluate -----------------------------------------------------------------------------


def test_evaluate_prints_the_metrics_of_metrics_json(capsys, run_dir: Path, names_dir: Path) -> None:
    saved = json.loads((run_dir / "metrics.json").read_text())
    # One thread, as the run was trained: another count sums the logits in another order (last-bit differences).
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--data-dir", names_dir, "--json", "--threads", "1")
    assert code == 0 and err == ""
    assert json.loads(out) == saved
    code, out, _ = run_cli(capsys, "evaluate", run_dir, "--data-dir", names_dir)
    assert code == 0
    assert f"accuracy {saved['accuracy']:.4f}" in out and f"macro-F1 {saved['macro_f1']:.4f}" in out
    for label in LABELS:
        assert any(line.split()[0] == label for line in out.splitlines()), label


def test_evaluate_warns_when_the_dataset_changed(capsys, run_dir: Path, names_dir: Path, tmp_path: Path) -> None:
    changed = Path(shutil.copytree(names_dir, tmp_path / "names"))
    with (changed / "Gamma.txt").open("a") as handle:
        handle.write("Nlmrs\n")
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--data-dir", changed, "--json")
    assert code == 0 and "accuracy" in json.loads(out)
    assert err.startswith("warning:") and "differs" in err


def test_evaluate_refuses_a_dataset_with_other_languages(capsys, run_dir: Path, tmp_path: Path) -> None:
    other = make_names_folder(tmp_path / "other", {"Alpha": ["Abe"], "Delta": ["Dodd"]})
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--data-dir", other)
    assert code == 1 and out == "" and "--data-dir" in err


def test_evaluate_a_missing_run(capsys, names_dir: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "no-run", "--data-dir", names_dir)
    assert code == 1 and out == "" and "no-run" in err and "does not exist" in err


# --- predict ------------------------------------------------------------------------------


def assert_prediction_row(row: dict, name: str, top_k: int) -> None:
    assert row["name"] == name
    assert list(row) == list(RESULT_FIELDS)  # every field of the schema, in its order
    assert row["error"] is None and row["coverage_set"] is None and isinstance(row["uncertain"], bool)
    assert isinstance(row["unknown_language"], bool) and isinstance(row["unknown_score"], float)
    assert row["normalized"] == normalize(name)
    predictions = row["predictions"]
    assert len(predictions) == top_k
    assert all(set(p) == {"language", "probability"} and p["language"] in LABELS for p in predictions)
    assert len({p["language"] for p in predictions}) == top_k
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) <= 1 + 1e-5  # rounded to 6 decimals


def assert_error_row(row: dict, name: str) -> None:
    assert list(row) == list(RESULT_FIELDS) and row["name"] == name
    assert row["normalized"] is row["predictions"] is row["uncertain"] is None
    assert "no letters" in row["error"]


def test_ranked_gives_each_rows_top_k_rounded_best_first() -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(50, 5), dim=1)
    labels = ["A", "B", "C", "D", "E"]
    top = ranked(probs, labels, top_k=3)
    assert len(top) == 50
    for row, entries in zip(probs.tolist(), top):
        best = sorted(range(5), key=lambda j: -row[j])[:3]
        assert [e["language"] for e in entries] == [labels[j] for j in best]
        assert [e["probability"] for e in entries] == [round(row[j], 6) for j in best]
    assert [len(entries) for entries in ranked(probs, labels, top_k=9)] == [5] * 50  # capped at the labels


def test_predict_json_lines(capsys, run_dir: Path) -> None:
    names = ["Lmnrs", "Aeiou", "123", "Bdkgt"]
    code, out, err = run_cli(capsys, "predict", run_dir, *names, "--format", "json", "--top-k", "2")
    assert code == 0 and err == ""
    rows = json_lines(out)
    assert len(rows) == len(names)
    for row, name in zip(rows, names):
        if name == "123":
            assert_error_row(row, name)
        else:
            assert_prediction_row(row, name, top_k=2)
            assert row["predictions"][0]["language"] == KNOWN[name]


def test_predict_matches_the_predictor(capsys, run_dir: Path) -> None:
    names = ["Aeiou", "M\u00fcller"]
    code, out, _ = run_cli(capsys, "predict", run_dir, *names, "--format", "json", "--top-k", "3")
    assert code == 0
    expected = load_predictor(run_dir).predict(names, top_k=3, min_confidence=0.5)  # the CLI's default threshold
    assert json_lines(out) == [json_record(row) for row in expected]


def test_predict_top_k_is_capped_at_the_number_of_languages(capsys, run_dir: Path) -> None:
    code, out, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "--format", "json", "--top-k", "10")
    assert code == 0
    (row,) = json_lines(out)
    assert_prediction_row(row, "Aeiou", top_k=3)
    assert sum(p["probability"] for p in row["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_text_and_csv(capsys, run_dir: Path) -> None:
    code, out, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "42", "--top-k", "1")
    assert code == 0
    first, second = out.splitlines()
    assert first.split("\t")[0] == "Aeiou" and "Alpha" in first
    assert second.startswith("42\terror:")
    code, out, _ = run_cli(capsys, "predict", run_dir, "Aeiou", "42", "--top-k", "2", "--format", "csv")
    header, ok, bad = list(csv.reader(io.StringIO(out)))
    assert header == [
        "name", "normalized", "language_1", "probability_1", "language_2", "probability_2", "uncertain",
        "unknown_language", "unknown_score", "error",
    ]  # fmt: skip
    assert ok[:3] == ["Aeiou", "Aeiou", "Alpha"] and ok[-1] == "" and ok[6] in ("true", "false")
    assert ok[7] in ("true", "false") and float(ok[8]) > 0
    assert float(ok[3]) >= float(ok[5])
    assert len(ok[3].split(".")[1]) == 4  # 4 decimals on every flat surface
    assert bad[0] == "42" and bad[1:-1] == [""] * 8 and "no letters" in bad[-1]


def test_predict_input_file_json_keeps_every_line_in_order(capsys, run_dir: Path, input_file: Path) -> None:
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", input_file, "--format", "json", "--top-k", "2")
    assert code == 0
    rows = json_lines(out)
    assert [row["name"] for row in rows] == INPUT_LINES
    for i, (row, line) in enumerate(zip(rows, INPUT_LINES)):
        if i in UNUSABLE:
            assert_error_row(row, line)
        else:
            assert_prediction_row(row, line, top_k=2)
    assert rows[0]["predictions"][0]["language"] == "Alpha"  # the byte order mark is not part of the name
    assert rows[6]["normalized"] == "Bdkgt" and rows[6]["predictions"][0]["language"] == "Beta"
    assert rows[7]["predictions"][0]["language"] == "Gamma"  # the last line, without a newline
    assert rows[5]["normalized"] == "Ivanov"


def test_predict_input_file_csv_and_text_keep_every_line(capsys, run_dir: Path, input_file: Path) -> None:
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", input_file, "--format", "csv")
    assert code == 0
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert [row[0] for row in rows] == INPUT_LINES
    assert all(len(row) == len(header) for row in rows)
    assert [i for i, row in enumerate(rows) if row[-1]] == sorted(UNUSABLE)
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", input_file)
    assert code == 0
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(INPUT_LINES)
    assert [i for i, line in enumerate(lines[:-1]) if "\terror: " in line] == sorted(UNUSABLE)


def test_predict_trailing_blank_line_is_a_row(capsys, run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(b"Aeiou\n\n")  # two lines: a name, then a blank one
    code, out, _ = run_cli(capsys, "predict", run_dir, "--input", path, "--format", "json")
    assert code == 0
    rows = json_lines(out)
    assert [row["name"] for row in rows] == ["Aeiou", ""] and "error" in rows[1]


@pytest.mark.parametrize("fmt", ["json", "csv", "text"])
def test_predict_output_file(capsys, run_dir: Path, input_file: Path, tmp_path: Path, fmt: str) -> None:
    code, expected, _ = run_cli(capsys, "predict", run_dir, "--input", input_file, "--format", fmt)
    assert code == 0
    target = tmp_path / "out" / f"predictions.{fmt}"
    code, out, err = run_cli(capsys, "predict", run_dir, "--input", input_file, "--format", fmt, "--output", target)
    assert code == 0 and out == "" and err == ""
    assert target.read_bytes().decode("utf-8") == expected  # bytes: csv records end in CRLF
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left behind


# --- predict: usage errors and bad input --------------------------------------------------


def test_predict_names_and_input_together_is_a_usage_error(capsys, run_dir: Path, input_file: Path) -> None:
    code, out, err = run_cli(capsys, "predict", run_dir, "Aeiou", "--input", input_file)
    assert code == 2 and out == "" and "--input" in err


def test_predict_without_names_is_a_usage_error(capsys, run_dir: Path) -> None:
    code, out, err = run_cli(capsys, "predict", run_dir)
    assert code == 2 and out == "" and "--input" in err


def test_predict_top_k_below_one_is_a_usage_error(capsys, run_dir: Path) -> None:
    code, _, err = run_cli(capsys, "predict", run_dir, "Aeiou", "--top-k", "0")
    assert code == 2 and "--top-k" in err


def test_unknown_format_is_an_argparse_usage_error(capsys, run_dir: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(run_dir), "Aeiou", "--format", "xml"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_threads_sets_torch_threads(capsys, run_dir: Path, names_dir: Path, monkeypatch, command: str) -> None:
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    extra = ["Aeiou"] if command == "predict" else ["--data-dir", names_dir]
    code, _, _ = run_cli(capsys, command, run_dir, *extra, "--threads", "3")
    assert code == 0 and asked == [3]


@pytest.mark.parametrize("threads", ["0", "-1", "two"])
def test_threads_below_one_is_a_usage_error(capsys, run_dir: Path, threads: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(run_dir), "Aeiou", "--threads", threads])
    assert info.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_predict_bad_run_dir(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "predict", tmp_path / "no-run", "Aeiou")
    assert code == 1 and out == ""
    assert err.startswith("error:") and "no-run" in err


def test_predict_damaged_run_dir(capsys, run_dir: Path, tmp_path: Path) -> None:
    damaged = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (damaged / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes()[:-10])
    code, out, err = run_cli(capsys, "predict", damaged, "Aeiou")
    assert code == 1 and out == "" and "truncated" in err


def test_predict_missing_input_file(capsys, run_dir: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "predict", run_dir, "--input", tmp_path / "absent.txt")
    assert code == 1 and out == "" and "absent.txt" in err and "does not exist" in err


def test_predict_input_file_not_utf8(capsys, run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("M\u00fcller\n".encode("latin-1"))
    code, out, err = run_cli(capsys, "predict", run_dir, "--input", path)
    # The line with the Latin-1 byte gets an error row of its own (the other lines would be answered).
    assert code == 0 and err == "" and "xfcller\terror: " in out and "UTF-8" in out and len(out.splitlines()) == 1


@pytest.mark.parametrize("bad", ["input-is-a-folder", "output-under-a-file"])
def test_predict_unusable_paths_fail_with_a_message(capsys, run_dir: Path, tmp_path: Path, bad: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    if bad == "input-is-a-folder":
        argv = ["predict", run_dir, "--input", tmp_path]
    else:
        argv = ["predict", run_dir, "Aeiou", "--output", blocker / "predictions.txt"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and out == "" and err.startswith("error:")


def test_predict_min_confidence_and_coverage_in_every_format(capsys, run_dir: Path) -> None:
    names = ["Aeiou", "Bdkgt", "42"]
    predictor = load_predictor(run_dir)
    expected = predictor.predict(names, top_k=2, min_confidence=0.999999, coverage=0.9)
    assert any(row.get("uncertain") for row in expected)  # the tiny model is never that sure
    args = ("predict", run_dir, *names, "--top-k", "2", "--min-confidence", "0.999999", "--coverage", "0.9")
    code, out, _ = run_cli(capsys, *args, "--format", "json")
    assert code == 0 and json_lines(out) == [json_record(row) for row in expected]
    code, out, _ = run_cli(capsys, *args, "--format", "csv")
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header[-5:] == ["uncertain", "unknown_language", "unknown_score", "coverage_set", "error"]
    for row, want in zip(rows, expected):
        if "error" in want:
            assert row[-5:-1] == ["", "", "", ""]
        else:
            assert row[-5] == str(want["uncertain"]).lower()
            assert row[-2].split("|") == want["coverage_set"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "set: " in out.splitlines()[0]
    for bad in (["--min-confidence", "1.5"], ["--coverage", "1"]):
        code, _, err = run_cli(capsys, "predict", run_dir, "Aeiou", *bad)
        assert code == 2 and bad[0] in err


def test_train_preset_best_writes_a_calibrated_ensemble(capsys, names_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    from namelab.inference.ensemble import EnsemblePredictor
    from namelab.train import presets

    # The preset's own members, shrunk to what a test affords; everything else is the real path.
    best = presets.PRESETS["best"]
    small = tuple(replace(m, hidden_size=16, epochs=4, batch_size=8, lr=0.03) for m in best.members)
    monkeypatch.setitem(presets.PRESETS, "best", replace(best, members=small))
    with one_thread():
        code, out, err = run_cli(capsys, "train", "--preset", "best", "--data-dir", names_dir, "--out", tmp_path / "b")
    assert code == 0, err
    assert "calibration: temperature" in out and "sets cover" in out
    predictor = load_predictor(tmp_path / "b")
    assert isinstance(predictor, EnsemblePredictor) and len(predictor.members) == len(small) + int(best.ngram)
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "ece_before", "ece_after", "coverage", "mean_set_size"} <= set(metrics)
    assert predictor.predict(["Aeiou"], top_k=1)[0]["predictions"][0]["language"] == "Alpha"
