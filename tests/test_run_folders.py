"""Every kind of run folder (single, n-gram, ensemble) is finished by its manifest, and checked field by field.

    PYTHONPATH=src .venv/bin/python -m pytest tests/test_run_folders.py -q

A kill is simulated at each write a writer makes (the k-th atomic write raises): every
reader (load_predictor, the server's folder discovery) must refuse what is left, and a
compare folder holding one such run serves the others with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from namelab.cli.commands import main
from namelab.cli.parser import build_parser
from namelab.data.corpus import Corpus
from namelab.data.download import DataError
from namelab.inference import ngram as ngram_module
from namelab.inference.load import load_predictor
from namelab.inference.output import open_output
from namelab.inference.stream import TableOptions, predict_table
from namelab.runs import checkpoint
from namelab.runs.checkpoint import CONFIG, MANIFEST, CheckpointError, write_manifest
from namelab.serve import bind_socket
from namelab.serve.runs import find_runs, load_served_models
from namelab.train import presets as presets_module
from namelab.train.loop import train_command
from namelab.train.ngram import train_ngram
from namelab.train.presets import MEMBERS, PRESETS, train_ensemble, train_preset

SRC = Path(__file__).resolve().parents[1] / "src"


class Killed(BaseException):
    """Stands for a SIGKILL: nothing catches it."""


def kill_at_write(monkeypatch: pytest.MonkeyPatch, k: int) -> list[str]:
    """Make the ``k``-th atomic write (1-based) raise :class:`Killed` before it lands; returns the writes made."""
    original = checkpoint.atomic_write_bytes
    written: list[str] = []

    def write(path, data):
        if len(written) + 1 == k:
            raise Killed(str(path))
        written.append(Path(path).name)
        original(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", write)
    monkeypatch.setattr(ngram_module, "atomic_write_bytes", write)
    return written


@pytest.fixture(scope="module")
def corpus(tiny_names_dir: Path) -> Corpus:
    return Corpus.from_folder(tiny_names_dir)


@pytest.fixture(scope="module")
def ngram_run(corpus: Corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ngram") / "ngram"
    train_ngram(corpus.split(seed=0), corpus.labels, out, meta={"config": {"split_seed": 0}}, c_grid=(10.0,))
    return out


def assert_refused_everywhere(folder: Path) -> None:
    with pytest.raises(CheckpointError):
        load_predictor(folder)
    with pytest.raises(CheckpointError):
        find_runs(folder)


def test_an_ngram_run_killed_at_any_write_is_refused(corpus: Corpus, tmp_path: Path, monkeypatch):
    split = corpus.split(seed=0)
    written = kill_at_write(monkeypatch, 0)  # no kill: count the writes
    train_ngram(split, corpus.labels, tmp_path / "whole", c_grid=(10.0,))
    assert written[-1] == MANIFEST and len(written) >= 5
    for k in range(1, len(written)):
        monkeypatch.undo()
        kill_at_write(monkeypatch, k)
        out = tmp_path / f"killed-{k}"
        with pytest.raises(Killed):
            train_ngram(split, corpus.labels, out, c_grid=(10.0,))
        monkeypatch.undo()
        if out.exists() and any(out.iterdir()):
            assert_refused_everywhere(out)
    load_predictor(tmp_path / "whole")  # the finished one loads


def test_an_ensemble_killed_at_any_write_is_refused(corpus: Corpus, tiny_runs, ngram_run: Path, tmp_path: Path, monkeypatch):
    def fresh(name: str) -> Path:
        out = tmp_path / name
        shutil.copytree(tiny_runs["gru"], out / MEMBERS / "gru")
        shutil.copytree(ngram_run, out / MEMBERS / "ngram")
        return out

    def build(out: Path) -> None:
        members = [out / MEMBERS / "gru", out / MEMBERS / "ngram"]
        train_ensemble([], corpus, out, ngram=False, members_ready=members, log=lambda line: None)

    written = kill_at_write(monkeypatch, 0)
    build(fresh("whole"))
    assert written[-1] == MANIFEST and len(written) >= 6
    for k in range(1, len(written)):
        monkeypatch.undo()
        kill_at_write(monkeypatch, k)
        out = fresh(f"killed-{k}")
        with pytest.raises(Killed):
            build(out)
        monkeypatch.undo()
        if k == 1:  # the ensemble's first write (a config.json that marks the folder as one run) never landed
            assert not (out / CONFIG).exists()
            with pytest.raises(CheckpointError):
                load_predictor(out)
            continue
        # Refused as an unfinished run: never mistaken for a compare folder that serves its members.
        assert_refused_everywhere(out)
    assert load_predictor(tmp_path / "whole").weights[1] > 0


def test_a_compare_folder_skips_a_half_written_run_with_a_warning(tiny_runs, ngram_run: Path, tmp_path: Path, caplog):
    root = tmp_path / "compare"
    shutil.copytree(tiny_runs["gru"], root / "runs" / "gru-seed0")
    half = shutil.copytree(ngram_run, root / "runs" / "ngram")
    (half / MANIFEST).unlink()  # killed before its manifest
    with caplog.at_level(logging.WARNING, logger="namelab.serve.runs"):
        models = load_served_models([root])
    assert [m.name for m in models] == ["gru"]
    assert "not serving an unfinished run" in caplog.text and str(half) in caplog.text


# -- every field checked on load --------------------------------------------------------------


def edited(source: Path, target: Path, change) -> Path:
    """A copy of a run whose config.json ``change`` edits; the manifest is rewritten to match (a consistent fault)."""
    shutil.copytree(source, target)
    config = json.loads((target / CONFIG).read_text())
    change(config)
    (target / CONFIG).write_text(json.dumps(config))
    write_manifest(target)
    return target


def set_calibration(field: str, value):
    return lambda config: config["calibration"].__setitem__(field, value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("temperature", -1.0, "temperature must be a finite number above 0, got -1.0"),
        ("temperature", 0, "temperature must be a finite number above 0, got 0"),
        ("temperature", math.nan, "temperature must be a finite number above 0, got nan"),
        ("temperature", "hot", "temperature must be a finite number above 0, got 'hot'"),
        ("conformal_scores", [1, "a"], "conformal_scores must be a list of numbers between 0 and 1"),
        ("conformal_scores", 1, "conformal_scores must be a list of numbers between 0 and 1"),
    ],
)
def test_a_bad_calibration_is_refused_by_every_kind(tiny_runs, ngram_run: Path, tmp_path: Path, field, value, message):
    for kind, source in (("gru", tiny_runs["gru"]), ("ngram", ngram_run)):
        target = edited(source, tmp_path / kind, set_calibration(field, value))
        with pytest.raises(CheckpointError, match=message) as err:
            load_predictor(target)
        assert str(target / CONFIG) in str(err.value)  # names the file


def test_an_edited_ngram_config_is_refused_by_its_checksum(ngram_run: Path, tmp_path: Path):
    target = shutil.copytree(ngram_run, tmp_path / "ngram")
    config = json.loads((target / CONFIG).read_text())
    config["labels"] = config["labels"][::-1]  # "Greek 0.989": another model's answers under the same weights
    (target / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="checksum"):
        load_predictor(target)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.__setitem__("features", c["features"][:-1]), "disagrees with config.json"),
        (lambda c: c.__setitem__("features", [c["features"][0]] * len(c["features"])), "distinct non-empty n-grams"),
        (lambda c: c.__setitem__("labels", c["labels"][:1] * len(c["labels"])), "labels must be distinct strings"),
        (lambda c: c.pop("config"), "no 'config'"),
    ],
)
def test_an_inconsistent_ngram_config_is_refused(ngram_run: Path, tmp_path: Path, change, message):
    with pytest.raises(CheckpointError, match=message):
        load_predictor(edited(ngram_run, tmp_path / "ngram", change))


def test_ensemble_weights_must_be_numbers(tiny_runs, ngram_run: Path, corpus: Corpus, tmp_path: Path):
    out = tmp_path / "ens"
    shutil.copytree(tiny_runs["gru"], out / MEMBERS / "gru")
    shutil.copytree(ngram_run, out / MEMBERS / "ngram")
    train_ensemble([], corpus, out, ngram=False, members_ready=[out / MEMBERS / "gru", out / MEMBERS / "ngram"],
                   log=lambda line: None)  # fmt: skip
    for weights in (["a", "b"], [math.nan, 1.0], [True, 1.0], [1.0]):
        target = edited(out, tmp_path / f"ens-{len(list(tmp_path.iterdir()))}", lambda c: c.__setitem__("weights", weights))
        with pytest.raises(CheckpointError, match="weights"):
            load_predictor(target)


def test_a_deeply_nested_config_says_the_file_is_damaged(tiny_runs, tmp_path: Path):
    target = shutil.copytree(tiny_runs["gru"], tmp_path / "gru")
    (target / CONFIG).write_text("[" * 100_000 + "]" * 100_000)
    write_manifest(target)
    with pytest.raises(CheckpointError, match="nests too deeply"):
        load_predictor(target)


# -- one writer per --out -----------------------------------------------------------------------


def tiny_train_argv(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--hidden-size", "8", "--epochs", "1", "--threads", "1",
            "--device", "cpu"]  # fmt: skip


def test_a_second_writer_into_one_out_is_refused_with_the_holders_pid(tiny_names_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = os.getppid()  # a process that is alive for the whole test
    (out / checkpoint.LOCK).write_text(f"{holder}\n")
    assert main(tiny_train_argv(tiny_names_dir, out)) == 1
    err = capsys.readouterr().err
    assert f"being written by process {holder}" in err and "Traceback" not in err
    assert not (out / CONFIG).exists() and (out / checkpoint.LOCK).read_text() == f"{holder}\n"  # untouched
    with pytest.raises(CheckpointError, match=f"process {holder}"):
        train_ngram(Corpus.from_folder(tiny_names_dir).split(), ["Alpha", "Beta", "Gamma"], out)


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny_names_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / checkpoint.LOCK).write_text(dead.stdout)
    assert main(tiny_train_argv(tiny_names_dir, out)) == 0
    assert not (out / checkpoint.LOCK).exists()  # released at the end
    load_predictor(out)


def test_two_writers_at_once_one_is_refused(tmp_path: Path):
    with checkpoint.run_lock(tmp_path / "run"):
        child = subprocess.run(
            [sys.executable, "-c", "from namelab.runs.checkpoint import run_lock\n"
             f"with run_lock({str(tmp_path / 'run')!r}): pass"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
        )  # fmt: skip
    assert child.returncode != 0 and f"being written by process {os.getpid()}" in child.stderr


# -- --preset with --resume ------------------------------------------------------------------------


def test_a_preset_resumes_after_a_kill_and_its_resume_command_parses(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    small = {"hidden_size": 8, "epochs": 1, "embedding_dim": 0, "ngram_buckets": 0, "device": "cpu"}
    out = tmp_path / "best"

    def killed(*args, **kwargs):
        raise Killed("during the n-gram member")

    monkeypatch.setattr(presets_module, "train_ngram", killed)
    with pytest.raises(Killed):
        train_preset("best", corpus, out, overrides=small, log=lambda line: None)
    monkeypatch.undo()
    assert_refused_everywhere(out)
    trained: list = []
    original = presets_module.train
    monkeypatch.setattr(presets_module, "train", lambda *a, **k: trained.append(a) or original(*a, **k))
    with pytest.raises(ValueError, match="already holds a finished run"):  # without --resume: refused, not redone
        train_preset("best", corpus, out, overrides=small, log=lambda line: None)
    trained.clear()
    train_preset("best", corpus, out, overrides=small, resume=True, log=lambda line: None)
    assert trained == []  # the finished GRU member was kept
    assert len(load_predictor(out).members) == 2
    # The command a member's messages give parses (a flag such as --bidirectional takes no value).
    config = replace(PRESETS["best"].members[0], **small)
    command = train_command(config, out, None)
    assert "--bidirectional" in command and "True" not in command.split()
    build_parser().parse_args(shlex.split(command)[1:])


# -- tables follow the names-file rules ----------------------------------------------------------


def test_a_table_refuses_names_over_the_length_limit_as_a_names_file_does(tiny_runs, tmp_path: Path, capsys):
    names = ["Aeiou", "A" * 72, "\ufdfa" * 5, "x" * 100_000, "123", "Bdkgt"]
    csv_path = tmp_path / "people.csv"
    pa_csv.write_csv(pa.table({"name": names}), csv_path)
    predict_table(load_predictor(tiny_runs["gru"]), csv_path, tmp_path / "out.csv", TableOptions(), progress=False)
    rows = pa_csv.read_csv(tmp_path / "out.csv").to_pylist()
    assert [row["language_1"] or None for row in rows] == ["Alpha", None, None, None, None, "Beta"]
    assert "a name may have at most 64" in rows[1]["error"] and "72 characters once transliterated" in rows[1]["error"]
    assert "becomes 145 characters" in rows[2]["error"]
    assert rows[3]["error"].startswith("is 100,000 characters long") and not rows[3]["normalized"]
    # The same names in a names file get the same verdicts.
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(names[:3]) + "\n")
    assert main(["predict", str(tiny_runs["gru"]), "--input", str(names_file), "--format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["error"] is not None for line in lines] == [False, True, True]


# -- clear errors, not tracebacks ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seed", "4294967296"], "--seed must be at most 4,294,967,295, got 4,294,967,296"),
        (["--split-seed", str(2**40)], "--split-seed must be at most"),
        (["--hidden-size", str(10**20)], "--hidden-size must be at most 65,536"),
        (["--embedding-dim", str(10**20)], "--embedding-dim must be at most 65,536"),
        (["--batch-size", str(10**20)], "--batch-size must be at most"),
        (["--ngram-buckets", str(10**20)], "--ngram-buckets must be at most"),
        (["--lr", "1e23"], "--lr must be a number above 0 and at most 10, got 1e+23"),
    ],
)
def test_out_of_range_options_are_refused_before_training(tiny_names_dir: Path, tmp_path: Path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(tiny_train_argv(tiny_names_dir, out) + argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # failed before anything was written


@pytest.mark.parametrize("port", ["70000", "-1", str(10**20), "http"])
def test_serve_refuses_a_port_outside_0_to_65535(tiny_runs, capsys, port):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", str(tiny_runs["gru"]), "--port", port])
    assert exit_.value.code == 2
    assert f"expected a port from 0 to 65535 (0: any free port), got '{port}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--port must be a whole number from 0 to 65535"):
        bind_socket("127.0.0.1", 70000)  # the API refuses it too, rather than binding 70000 - 65536


def test_a_table_header_naming_a_column_twice_is_an_error_not_a_traceback(tiny_runs, tmp_path: Path, capsys):
    table = tmp_path / "people.csv"
    table.write_text("name,name\nAbe,Alpha\n")
    assert main(["predict", str(tiny_runs["gru"]), "--input", str(table)]) == 1
    err = capsys.readouterr().err
    assert "has 2 columns named 'name'" in err and "Traceback" not in err
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("name,language,name\nAbe,Alpha,x\nBob,Beta,y\n")
    assert main(["train", "--data", str(labelled), "--out", str(tmp_path / "run")]) == 1
    assert "has 2 columns named 'name'" in capsys.readouterr().err


def test_a_nan_label_in_parquet_is_a_missing_label_not_a_class(tmp_path: Path):
    table = tmp_path / "people.parquet"
    pq.write_table(pa.table({"name": ["Abe", "Bohm", "Cid"], "language": [1.0, 2.0, math.nan]}), table)
    with pytest.raises(DataError, match=r"row\(s\) with an empty 'name' or 'language'"):
        Corpus.from_table(table)


def test_an_output_file_removes_what_a_killed_writer_left_and_spares_run_files(tiny_runs, tmp_path: Path):
    target = tmp_path / "out.csv"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # fmt: skip
    stale = tmp_path / f".out.csv.{dead}-0a1b2c3d.tmp"
    live = tmp_path / f".out.csv.{os.getppid()}-0a1b2c3d.tmp"  # a writer still running: left alone
    stale.write_text("half")
    live.write_text("half")
    with open_output(target) as handle:
        handle.write("name\n")
    assert target.read_text() == "name\n" and not stale.exists() and live.exists()
    weights = tiny_runs["gru"] / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(ValueError, match="is a file of the run folder"):
        with open_output(weights) as handle:
            handle.write("x")
    assert weights.read_bytes() == before


def test_resume_from_a_damaged_checkpoint_is_refused_not_restarted(tiny_names_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / checkpoint.CHECKPOINT).write_bytes(b"\0" * 64)  # what a damaged disk could leave
    assert main(tiny_train_argv(tiny_names_dir, out) + ["--resume"]) == 1
    assert "is damaged and cannot be resumed; pass --force" in capsys.readouterr().err
    assert (out / checkpoint.CHECKPOINT).read_bytes() == b"\0" * 64  # kept for the user to decide
