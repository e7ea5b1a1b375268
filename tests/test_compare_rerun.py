"""Rerunning ``namelab compare``: finished runs are reused, an interrupted rerun leaves no stale report.

    .venv/bin/python -m pytest tests/test_compare_rerun.py -q
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from helpers import make_names_folder, one_thread, separable_names

from namelab.cli.commands import main
from namelab.data.corpus import Corpus
from namelab.runs.checkpoint import (
    CHECKPOINT,
    CONFIG,
    load_checkpoint,
    read_json,
    save_checkpoint,
    write_json,
    write_manifest,
)
from namelab.runs.config import OLD_NAMES, TrainConfig

compare_module = importlib.import_module("namelab.experiment.compare")


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))


def compare(names_dir: Path, out: Path, *extra: str) -> int:
    argv = ["compare", "--quick", "--models", "rnn,gru", "--data-dir", str(names_dir), "--out", str(out),
            "--hidden-size", "8", "--epochs", "2", "--device", "cpu", *extra]  # fmt: skip
    with one_thread():
        return main(argv)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from namelab.runs.checkpoint import load_run

    return load_run(run_dir)[0].state_dict()


def forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run with the same settings was trained again")

    monkeypatch.setattr(compare_module, "train", no_training)


def test_a_rerun_reuses_finished_runs_and_rebuilds_the_same_report(names_dir, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "c"
    assert compare(names_dir, out) == 0
    first = json.loads((out / "summary.json").read_text())
    trained = {p.name: weights(p) for p in (out / "runs").iterdir()}

    forbid_training(monkeypatch)
    capsys.readouterr()
    assert compare(names_dir, out) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"] == first["runs"]  # history, metrics and timings read back from the run folders
    assert [f["verdict"] for f in again["findings"]] == [f["verdict"] for f in first["findings"]]
    for name, state in trained.items():
        for key, tensor in weights(out / "runs" / name).items():
            assert torch.equal(tensor, state[key])


def test_an_interrupted_rerun_leaves_no_report_of_other_runs(names_dir, tmp_path, monkeypatch) -> None:
    out = tmp_path / "c"
    assert compare(names_dir, out) == 0
    assert (out / "summary.json").is_file()
    real_train = compare_module.train
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(compare_module, "train", interrupted_second)
    assert compare(names_dir, out, "--epochs", "3") == 130  # other settings: every run is trained again
    assert not any((out / name).exists() for name in ("summary.json", "report.html", "report.md"))
    monkeypatch.undo()
    # The next rerun keeps the run already retrained with 3 epochs and trains the other.
    assert compare(names_dir, out, "--epochs", "3") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {r["model"]: r["epochs"] for r in summary["runs"]} == {"rnn": 3, "gru": 3}
    for run in summary["runs"]:
        assert len(json.loads((out / run["run_dir"] / "history.json").read_text())) == 3


def test_a_damaged_run_is_trained_again(names_dir, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    assert compare(names_dir, out) == 0
    (out / "runs" / "rnn-seed0" / "model.safetensors").write_bytes(b"garbage")
    capsys.readouterr()
    assert compare(names_dir, out) == 0
    log = capsys.readouterr().out
    assert "training it again" in log and log.count("reusing the finished run") == 1
    weights(out / "runs" / "rnn-seed0")  # loads again


def test_a_rerun_reuses_old_named_folders_and_removes_a_checkpoint_a_kill_left(names_dir, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "c"
    assert compare(names_dir, out) == 0
    rnn, gru = out / "runs" / "rnn-seed0", out / "runs" / "gru-seed0"
    meta = read_json(rnn / CONFIG)
    old = {new: old for old, new in OLD_NAMES.items()}
    meta["config"] = {old.get(k, k): v for k, v in meta["config"].items()}  # as namelab wrote it before
    write_json(rnn / CONFIG, meta)
    write_manifest(rnn)
    (gru / CHECKPOINT).write_bytes(b"a checkpoint left by a kill after the manifest")

    forbid_training(monkeypatch)
    capsys.readouterr()
    assert compare(names_dir, out) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    assert not (gru / CHECKPOINT).exists()


@pytest.mark.parametrize("names", ["today's", "old"])
def test_an_unfinished_run_is_resumed_whatever_names_its_checkpoint_uses(names_dir, tmp_path, monkeypatch, names) -> None:
    config = TrainConfig(cell="gru", hidden_size=8, epochs=3, batch_size=8, device="cpu")
    corpus, run_dir = Corpus.from_folder(names_dir), tmp_path / "gru-seed0"

    def stop_at_epoch_2(line: str) -> None:
        if "epoch 2/" in line:
            raise KeyboardInterrupt

    with one_thread(), pytest.raises(KeyboardInterrupt):
        compare_module.train(config, corpus, run_dir, data_dir=names_dir, log=stop_at_epoch_2)
    if names == "old":
        tensors, info = load_checkpoint(run_dir)
        old = {new: old for old, new in OLD_NAMES.items()}
        info["config"] = {old.get(k, k): v for k, v in info["config"].items()}
        save_checkpoint(run_dir, tensors, info)
    asked = []
    monkeypatch.setattr(compare_module, "train", lambda *args, **kwargs: asked.append(kwargs["resume"]))
    split = corpus.split(seed=config.split_seed)
    compare_module.finished_or_trained(config, corpus, run_dir, data_dir=names_dir, split=split, log=lambda line: None)
    assert asked == [True]  # the trained epoch is kept, not trained again
