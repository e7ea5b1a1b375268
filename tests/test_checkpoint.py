"""Tests for namelab.runs.checkpoint: safetensors + JSON run folders, atomic writes, damage detection.

    .venv/bin/python -m pytest tests/test_checkpoint.py -q

One tiny run is trained per module; each test that damages a run works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import pytest
import torch
from helpers import make_names_folder, separable_names, train_tiny_run
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from namelab.core.model import CharClassifier, ModelConfig
from namelab.data.corpus import Vocab, encode_batch
from namelab.runs import checkpoint
from namelab.runs.card import model_card
from namelab.runs.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_run,
    save_run,
    write_json,
)
from namelab.runs.config import OLD_NAMES, TrainConfig, cell_or_kind, config_from_dict
from namelab.train.loop import TrainResult

NAMES = ["Aeiou", "Bdkgt", "Lmnrs", "Abdul", "Xu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    names = make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))
    out = tmp_path_factory.mktemp("runs") / "lstm"
    return out, train_tiny_run(names, out, epochs=2)


@pytest.fixture()
def run_dir(trained, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to damage."""
    return Path(shutil.copytree(trained[0], tmp_path / "run"))


def logits(model: CharClassifier, names: list[str]) -> torch.Tensor:
    ids, lengths = encode_batch(names, Vocab())
    with torch.no_grad():
        return model(ids, lengths)


def edit_config(run_dir: Path, change: Callable[[dict], None]) -> None:
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def replace_weights(run_dir: Path, blob: bytes) -> None:
    """Write new weights and fix the checksum in config.json, as a careful forger would."""
    (run_dir / "model.safetensors").write_bytes(blob)
    edit_config(run_dir, lambda c: c.update(weights_sha256=hashlib.sha256(blob).hexdigest()))


# --- round trip ---------------------------------------------------------------------------


def test_load_run_returns_the_saved_model_in_eval_mode(trained) -> None:
    out, result = trained
    model, meta = load_run(out)
    assert not model.training
    assert meta == json.loads((out / "config.json").read_text())
    assert meta["config"] == result.meta["config"]
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    torch.testing.assert_close(logits(model, NAMES), logits(result.model, NAMES), atol=0, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_fused_models_round_trip_too(tmp_path: Path, cell: str) -> None:
    torch.manual_seed(0)
    vocab = Vocab()
    model = CharClassifier(ModelConfig(len(vocab), 3, cell, hidden_size=8, engine="fused")).eval()
    config = asdict(TrainConfig(cell=cell, engine="fused", hidden_size=8))
    meta = {"config": config, "vocab": vocab.chars, "labels": ["a", "b", "c"]}
    save_run(tmp_path, model, meta)
    loaded, loaded_meta = load_run(tmp_path)
    assert loaded.config.engine == "fused" and loaded.config.cell == cell
    assert {k: loaded_meta[k] for k in meta} == meta
    torch.testing.assert_close(logits(loaded, NAMES), logits(model, NAMES), atol=0, rtol=0)


def test_loading_never_unpickles(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("load_run must not unpickle anything")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    model, _ = load_run(run_dir)
    assert isinstance(model, CharClassifier)


class _Payload:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_posing_as_weights_is_refused_not_executed(run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    replace_weights(run_dir, pickle.dumps({"out.weight": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_run(run_dir)
    assert not marker.exists()


# --- atomic writes ------------------------------------------------------------------------


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert leftovers(target.parent, {"file.bin"}) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "config.json"
    write_json(target, {"version": "old"})

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match="simulated"):
        write_json(target, {"version": "new"})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": "old"}
    assert leftovers(tmp_path, {"config.json"}) == []


def test_interrupted_save_never_loads_mismatched_weights(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # save_run writes two files; a crash between them must not leave a run that loads the
    # new weights under the old config (or vice versa) without a word.
    model, meta = load_run(run_dir)
    with torch.no_grad():
        model.out.bias.add_(1.0)

    def crash(path, obj):
        raise OSError("killed (simulated)")

    monkeypatch.setattr(checkpoint, "write_json", crash)
    with pytest.raises(OSError):
        save_run(run_dir, model, meta)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="unfinished run"):
        load_run(run_dir)
    assert leftovers(
        run_dir,
        {"config.json", "model.safetensors", "history.json", "metrics.json", "unknown.json", "unknown.safetensors",
         "model-card.md"},
    ) == []


# --- damaged run folders ------------------------------------------------------------------


def test_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nothing-here")


def test_missing_weights(run_dir: Path) -> None:
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_run(run_dir)


def test_missing_config(run_dir: Path) -> None:
    (run_dir / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_run(run_dir)


@pytest.mark.parametrize("text", ["{not json", "", '{"config": '], ids=["garbage", "empty", "cut"])
def test_invalid_json_config(run_dir: Path, text: str) -> None:
    (run_dir / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(run_dir)


def test_truncated_weights(run_dir: Path) -> None:
    path = run_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_run(run_dir)


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_one_flipped_byte(run_dir: Path, where: str) -> None:
    path = run_dir / "model.safetensors"
    blob = bytearray(path.read_bytes())
    index = {"header": 20, "middle": len(blob) // 2, "last": len(blob) - 1}[where]
    blob[index] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_run(run_dir)


def test_truncated_weights_with_a_fixed_checksum(run_dir: Path) -> None:
    replace_weights(run_dir, (run_dir / "model.safetensors").read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_run(run_dir)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("hidden_size", lambda c: c["config"].update(hidden_size=c["config"]["hidden_size"] * 2)),
        ("cell", lambda c: c["config"].update(cell="gru")),  # LSTM weights hold 4 gates, a GRU 3
        ("labels", lambda c: c.update(labels=c["labels"][:-1])),
        ("vocab", lambda c: c.update(vocab=c["vocab"][:-1])),
        ("engine", lambda c: c["config"].update(engine="fused")),  # the fused engine names its tensors differently
    ],
)
def test_config_that_disagrees_with_the_weights(run_dir: Path, field: str, change) -> None:
    edit_config(run_dir, change)  # the weights and their checksum are untouched
    with pytest.raises(CheckpointError, match="disagrees with config.json"):
        load_run(run_dir)


def test_weights_that_disagree_with_the_config(run_dir: Path) -> None:
    state = load_safetensors((run_dir / "model.safetensors").read_bytes())
    state["out.weight"] = torch.zeros(state["out.weight"].shape[0] + 1, state["out.weight"].shape[1])
    state["extra"] = torch.zeros(2)
    replace_weights(run_dir, save_safetensors(state))
    with pytest.raises(CheckpointError, match="disagrees with config.json") as info:
        load_run(run_dir)
    assert "out.weight" in str(info.value) and "extra" in str(info.value)


@pytest.mark.parametrize("field", ["config", "vocab", "labels", "weights_sha256"])
def test_config_lacking_a_field(run_dir: Path, field: str) -> None:
    edit_config(run_dir, lambda c: c.pop(field))
    with pytest.raises(CheckpointError, match=f"lacks the field '{field}'"):
        load_run(run_dir)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["config"].pop("dropout"),
        lambda c: c["config"].pop("hidden_size"),
        lambda c: c["config"].update(cell="transformer"),
        lambda c: c["config"].update(hidden_size="16"),
        lambda c: c.update(config=[]),
    ],
    ids=["no-dropout", "no-hidden-size", "unknown-model", "hidden-size-string", "config-not-object"],
)
def test_config_with_a_bad_model_description(run_dir: Path, change) -> None:
    edit_config(run_dir, change)
    with pytest.raises(CheckpointError, match="does not describe a model namelab can build"):
        load_run(run_dir)


@pytest.mark.parametrize("value", ["", None, 0, []], ids=["blank", "null", "zero", "list"])
def test_config_without_a_weights_checksum_is_refused(run_dir: Path, value) -> None:
    # The weights are intact: only the record of their checksum is gone, and nothing else
    # would notice a later change to them.
    edit_config(run_dir, lambda c: c.update(weights_sha256=value))
    with pytest.raises(CheckpointError, match="records no checksum of the weights"):
        load_run(run_dir)


# --- every field read from a run folder is checked ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["config"].update(hidden_size=0), "--hidden-size must be at least 1, got 0"),
        (lambda c: c["config"].update(dropout=1.5), "--dropout must be a number from 0 up to"),
        (lambda c: c["config"].update(epochs=-1), "--epochs must be at least 1"),
        (lambda c: c["config"].update(brand_new=1), "unknown config field(s) brand_new"),
        (lambda c: c.update(labels="Alpha"), "labels must be a non-empty list of strings"),
        (lambda c: c.update(labels=["Alpha", "Alpha", "Beta"]), "labels lists a language twice"),
        (lambda c: c.update(vocab=42), "vocab must be a non-empty string"),
        (lambda c: c.update(config=[]), "config must be a JSON object"),
    ],
    ids=["hidden-0", "dropout", "epochs", "unknown-field", "labels-str", "labels-twice", "vocab-int", "config-list"],
)
def test_config_fields_are_checked_with_a_message(run_dir: Path, change, message: str) -> None:
    edit_config(run_dir, change)
    with pytest.raises(CheckpointError) as info:
        load_run(run_dir)
    assert message in str(info.value) and "config.json" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("metrics.json", [], "must hold a JSON object, got a list"),
        ("metrics.json", {"accuracy": 1.5, "macro_f1": 0.5, "n": 3}, "accuracy must be a number between 0 and 1"),
        ("metrics.json", {"accuracy": 0.5, "macro_f1": 0.5, "n": -1}, "n must be a whole number"),
        ("history.json", {"epoch": 1}, "must hold a non-empty JSON list of epochs"),
        ("history.json", [], "must hold a non-empty JSON list of epochs"),
        ("history.json", [{"train_loss": 1, "train_accuracy": 0.5, "val_loss": 1}], "row 0 val_accuracy"),
        ("history.json", ["epoch"], "epoch row 0 is a str"),
    ],
)
def test_history_and_metrics_are_checked_with_a_message(run_dir: Path, name: str, content, message: str) -> None:
    (run_dir / name).write_text(json.dumps(content))
    reader = checkpoint.read_metrics if name == "metrics.json" else checkpoint.read_history
    with pytest.raises(CheckpointError) as info:
        reader(run_dir)
    assert message in str(info.value) and name in str(info.value)


def test_history_and_metrics_of_a_trained_run_pass_the_checks(trained) -> None:
    out, result = trained
    assert checkpoint.read_history(out) == json.loads(json.dumps(result.history))
    assert checkpoint.read_metrics(out) == json.loads(json.dumps(result.metrics))


# --- folders written before the cell and the engine had those names ---------------------------


def write_old_names(run_dir: Path) -> None:
    """Rewrite a run folder as namelab wrote it when the cell was ``model`` and the engine ``impl``."""
    old = {new: old for old, new in OLD_NAMES.items()}
    edit_config(run_dir, lambda c: c.update(config={old.get(k, k): v for k, v in c["config"].items()}))
    checkpoint.write_manifest(run_dir)


def test_a_folder_with_the_old_field_names_loads_as_it_was_trained(trained, run_dir: Path) -> None:
    write_old_names(run_dir)
    stored = json.loads((run_dir / "config.json").read_text())["config"]
    assert stored["model"] == "lstm" and stored["impl"] == "hand" and "cell" not in stored
    model, meta = load_run(run_dir)
    assert (model.config.cell, model.config.engine) == ("lstm", "hand")
    torch.testing.assert_close(logits(model, NAMES), logits(trained[1].model, NAMES), atol=0, rtol=0)
    assert config_from_dict(meta["config"]) == config_from_dict(trained[1].meta["config"])
    assert cell_or_kind(meta) == "lstm"
    assert "**Cell**: LSTM (hand engine)" in model_card(meta, None)


def test_a_config_with_both_the_old_and_the_new_name_is_refused(run_dir: Path) -> None:
    edit_config(run_dir, lambda c: c["config"].update(model="gru"))
    checkpoint.write_manifest(run_dir)
    with pytest.raises(CheckpointError, match="both 'model' and 'cell'"):
        load_run(run_dir)


def test_scripts_written_with_the_old_names_still_run_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"TrainConfig\(model=...\) is now TrainConfig\(cell=...\)"):
        config = TrainConfig(model="gru", hidden_size=8)
    with pytest.warns(DeprecationWarning, match="impl"):
        assert TrainConfig(impl="fused").engine == "fused"
    assert (config.cell, config.hidden_size) == ("gru", 8)
    with pytest.raises(TypeError, match="give cell= only"):
        TrainConfig(cell="gru", model="rnn")
    model = CharClassifier(ModelConfig(len(Vocab()), 3, "gru", hidden_size=8)).eval()
    with pytest.warns(DeprecationWarning, match="with_engine"):
        fused = model.with_impl("fused")
    assert fused.config.engine == "fused"
    torch.testing.assert_close(logits(fused, NAMES), logits(model, NAMES))
