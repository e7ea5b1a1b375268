"""Training that survives faults: per-epoch checkpoints, --resume, --force, Ctrl-C, unfinished folders.

    .venv/bin/python -m pytest tests/test_resume.py -q

The fault tests run ``namelab train`` in a child process whose batch loop stops, after
the first batch of a chosen epoch, on a marker file: the test then kills it (SIGKILL)
or interrupts it (SIGINT) at a known point in the middle of that epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import make_names_folder, one_thread, separable_names

from namelab import cli
from namelab.data.corpus import Corpus
from namelab.inference.evaluate import evaluate_run
from namelab.inference.load import load_predictor
from namelab.runs import checkpoint
from namelab.runs.checkpoint import CheckpointError, load_run, read_history, read_metrics
from namelab.runs.config import OLD_NAMES, TrainConfig
from namelab.train.loop import train

SRC = Path(__file__).resolve().parents[1] / "src"
# Dropout on, so the random generators matter as well as the weights and the optimizer.
OPTIONS = dict(cell="lstm", hidden_size=16, epochs=3, batch_size=8, lr=0.03, dropout=0.3, device="cpu")
CHILD = r"""
import importlib, os, signal, sys, time
from namelab import cli

# A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring it;
# the test plays a user at a terminal pressing Ctrl-C, so Python's own handler is put back.
signal.signal(signal.SIGINT, signal.default_int_handler)

train_module = importlib.import_module("namelab.train.loop")  # the module, not the function namelab exports

real_batches = train_module.batches
pause_epoch = int(os.environ["PAUSE_EPOCH"])

def batches(examples, vocab, batch_size, *, shuffle=False, seed=0):
    for i, batch in enumerate(real_batches(examples, vocab, batch_size, shuffle=shuffle, seed=seed)):
        yield batch
        if shuffle and seed == pause_epoch and i == 0:  # seed 0: the epoch's batch seed is the epoch
            open(os.environ["MARKER"], "w").close()
            time.sleep(600)

train_module.batches = batches
sys.exit(cli.main(sys.argv[1:]))
"""


def cli_options(data_dir: Path, out: Path) -> list[str]:
    words = ["train", "--data-dir", str(data_dir), "--out", str(out)]
    for name, value in OPTIONS.items():
        words += [f"--{name.replace('_', '-')}", str(value)]
    return words


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))


@pytest.fixture(scope="module")
def uninterrupted(names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    with one_thread():
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=lambda line: None)
    return out


def start_child(names_dir: Path, out: Path, tmp_path: Path, pause_epoch: int) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "OMP_NUM_THREADS": "1",
        "PAUSE_EPOCH": str(pause_epoch),
        "MARKER": str(marker),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *cli_options(names_dir, out), "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"training ended before the pause: {child.communicate()}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("training never reached the pause")
        time.sleep(0.05)
    return child, marker


def resume_in_process(names_dir: Path, out: Path, capsys) -> int:
    with one_thread():
        return cli.main([*cli_options(names_dir, out), "--resume"])


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_run(a)[0].state_dict(), load_run(b)[0].state_dict()
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def _stop_at_epoch_2(line: str) -> None:
    if "epoch 2/" in line:
        raise KeyboardInterrupt  # after epoch 1's checkpoint, before epoch 2's


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# -- kill, interrupt, resume -------------------------------------------------------------------


def test_sigkill_mid_epoch_then_resume_ends_bit_identical(names_dir, uninterrupted, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    child, _ = start_child(names_dir, out, tmp_path, pause_epoch=2)  # one batch into epoch 2
    child.send_signal(signal.SIGKILL)
    child.communicate()
    info = checkpoint.checkpoint_info(out)
    assert info["epoch"] == 1 and info["command"].endswith("--resume")
    assert checkpoint.run_state(out) == "unfinished"
    with pytest.raises(CheckpointError, match="--resume"):
        load_run(out)
    (out / ".checkpoint.safetensors.x1y2.tmp").write_bytes(b"half a write")  # as a kill mid-write leaves

    assert resume_in_process(names_dir, out, capsys) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_weights(out, uninterrupted)
    assert without_seconds(read_history(out)) == without_seconds(read_history(uninterrupted))
    assert read_metrics(out) == read_metrics(uninterrupted)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in uninterrupted.iterdir())


def test_ctrl_c_prints_one_line_exits_130_and_keeps_the_last_epoch(names_dir, uninterrupted, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    child, _ = start_child(names_dir, out, tmp_path, pause_epoch=3)
    child.send_signal(signal.SIGINT)
    try:
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:  # never leave a training child behind, whatever failed
            child.kill()
            child.communicate()
    assert child.returncode == 130
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "keeps epoch 2 of 3" in lines[0] and "--resume" in lines[0] and str(out) in lines[0]
    assert checkpoint.checkpoint_info(out)["epoch"] == 2
    assert not list(out.glob(".*.tmp"))
    assert resume_in_process(names_dir, out, capsys) == 0
    assert_same_weights(out, uninterrupted)


def test_resume_of_a_run_started_with_other_options_is_refused(names_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=_stop_at_epoch_2)
    with one_thread():
        code = cli.main([*cli_options(names_dir, out), "--resume", "--hidden-size", "32"])
    assert code == 1
    err = capsys.readouterr().err
    assert "hidden_size 16 (now 32)" in err and "--resume" in err


def test_a_checkpoint_with_the_old_field_names_resumes_under_the_old_flags(
    names_dir, uninterrupted, unfinished, capsys
) -> None:
    tensors, info = checkpoint.load_checkpoint(unfinished)
    old = {new: old for old, new in OLD_NAMES.items()}
    info["config"] = {old.get(k, k): v for k, v in info["config"].items()}  # as namelab wrote it before
    checkpoint.save_checkpoint(unfinished, tensors, info)
    words = [{"--cell": "--model"}.get(w, w) for w in cli_options(names_dir, unfinished)]
    with one_thread():
        assert cli.main([*words, "--impl", "hand", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_weights(unfinished, uninterrupted)
    assert load_run(unfinished)[1]["config"]["cell"] == "lstm"  # the finished folder speaks today's names


def test_resume_with_nothing_to_resume_trains_from_the_start(names_dir, uninterrupted, tmp_path, capsys) -> None:
    out = tmp_path / "fresh"
    assert resume_in_process(names_dir, out, capsys) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert_same_weights(out, uninterrupted)


# -- refusing to overwrite ---------------------------------------------------------------------


def test_a_finished_run_is_not_replaced_without_force(names_dir, uninterrupted, tmp_path, capsys) -> None:
    out = Path(shutil.copytree(uninterrupted, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with one_thread():
        assert cli.main([*cli_options(names_dir, out)]) == 1
    err = capsys.readouterr().err
    assert "already holds a finished run" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with one_thread():
        assert cli.main([*cli_options(names_dir, out), "--epochs", "1", "--force"]) == 0
    assert len(read_history(out)) == 1


def test_an_unfinished_run_is_refused_without_resume_or_force(names_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=_stop_at_epoch_2)
    with one_thread():
        assert cli.main(cli_options(names_dir, out)) == 1
    err = capsys.readouterr().err
    assert "unfinished run" in err and "--resume" in err and "--force" in err


def test_resume_and_force_together_is_a_usage_error(names_dir, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*cli_options(names_dir, tmp_path / "run"), "--resume", "--force"])
    assert info.value.code == 2


# -- readers refuse unfinished and damaged folders ---------------------------------------------


@pytest.fixture()
def unfinished(names_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=_stop_at_epoch_2)
    return out


@pytest.mark.parametrize("reader", ["load_run", "predictor", "evaluate", "cli-predict", "cli-evaluate"])
def test_readers_refuse_an_unfinished_run_and_say_how_to_resume(unfinished, names_dir, reader, capsys) -> None:
    if reader.startswith("cli"):
        argv = ["predict", str(unfinished), "Smith"] if reader == "cli-predict" else ["evaluate", str(unfinished)]
        assert cli.main(argv + (["--data-dir", str(names_dir)] if reader == "cli-evaluate" else [])) == 1
        message = capsys.readouterr().err
    else:
        call = {
            "load_run": lambda: load_run(unfinished),
            "predictor": lambda: load_predictor(unfinished),
            "evaluate": lambda: evaluate_run(unfinished, names_dir),
        }[reader]
        with pytest.raises(CheckpointError) as info:
            call()
        message = str(info.value)
    assert "unfinished run" in message and "epoch 1 of 3" in message
    assert "namelab train" in message and f"--out {unfinished}" in message and "--resume" in message


def test_a_kill_between_the_final_files_is_unfinished_and_resumable(names_dir, uninterrupted, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"

    def killed(path, obj):
        raise KeyboardInterrupt  # stands for a kill after the weights, before config.json

    monkeypatch.setattr(checkpoint, "write_json", killed)
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=lambda line: None)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="epoch 3 of 3"):
        load_run(out)
    assert resume_in_process(names_dir, out, capsys) == 0
    assert_same_weights(out, uninterrupted)
    assert checkpoint.CHECKPOINT not in {p.name for p in out.iterdir()}


def test_a_checkpoint_left_by_a_kill_after_the_manifest_is_removed_at_the_next_start(
    names_dir, uninterrupted, tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "run"
    unlink = Path.unlink

    def killed(path, missing_ok=False):
        if path.name == checkpoint.CHECKPOINT and (path.parent / checkpoint.MANIFEST).exists():
            raise KeyboardInterrupt  # stands for a kill after the manifest, before the checkpoint is removed
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed)
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=lambda line: None)
    monkeypatch.undo()
    assert checkpoint.run_state(out) == "complete" and (out / checkpoint.CHECKPOINT).is_file()
    assert_same_weights(out, uninterrupted)  # the run itself is whole
    with one_thread():
        assert cli.main(cli_options(names_dir, out)) == 1  # finished: not replaced without --force
    captured = capsys.readouterr()
    assert "already holds a finished run" in captured.err
    assert f"removed {checkpoint.CHECKPOINT} from {out}" in captured.out
    assert not (out / checkpoint.CHECKPOINT).exists()
    assert_same_weights(out, uninterrupted)


def test_a_file_changed_after_the_manifest_is_refused(uninterrupted, tmp_path) -> None:
    out = Path(shutil.copytree(uninterrupted, tmp_path / "run"))
    history = json.loads((out / "history.json").read_text())
    history[0]["val_accuracy"] = 0.5
    (out / "history.json").write_text(json.dumps(history))
    with pytest.raises(CheckpointError, match="history.json does not match its checksum in manifest.json"):
        load_run(out)


def test_the_resume_command_is_the_users_own(names_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = [*cli_options(names_dir, out), "--threads", "1", "--force"]
    child_free = [a for a in argv if a != "--force"]
    from namelab.cli.commands import resume_command

    assert resume_command(argv, out) == "namelab " + " ".join(child_free) + " --resume"
    assert resume_command(["train", "--epochs", "2"], Path("runs/lstm-seed0")) == (
        "namelab train --epochs 2 --out runs/lstm-seed0 --resume"
    )


def test_resume_on_another_dataset_is_refused(names_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**OPTIONS), Corpus.from_folder(names_dir), out, data_dir=names_dir, log=_stop_at_epoch_2)
    other = make_names_folder(tmp_path / "other", separable_names(per_class=20, seed=1))
    with one_thread():
        assert cli.main([*cli_options(other, out), "--resume"]) == 1
    assert "dataset differs" in capsys.readouterr().err
    assert checkpoint.checkpoint_info(out)["epoch"] == 1  # the checkpoint is left as it was
