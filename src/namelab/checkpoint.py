"""Run folders: weights in safetensors, everything else in JSON, every write atomic.

    save_run(run_dir, model, meta)            # config.json + model.safetensors
    model, meta = load_run(run_dir)           # verifies checksum and shapes

Nothing is ever unpickled. ``config.json`` records the sha256 of the weights file, so
a truncated or tampered file fails with a clear message instead of loading quietly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .model import CharClassifier, ModelConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    """A run folder that cannot be loaded: missing, truncated, tampered or inconsistent."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is {path.parent} a run folder written by `namelab train`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the run folder is damaged, train it again") from err


def model_from_config(config: dict, vocab_size: int, num_classes: int) -> CharClassifier:
    return CharClassifier.from_config(ModelConfig.from_run_config(config, vocab_size, num_classes))


def save_run(run_dir: Path, model: CharClassifier, meta: dict) -> None:
    """Write the weights and ``config.json`` (``meta`` plus the weights' sha256)."""
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    blob = save_safetensors(state)
    atomic_write_bytes(Path(run_dir) / WEIGHTS, blob)
    write_json(Path(run_dir) / CONFIG, {**meta, "weights_sha256": hashlib.sha256(blob).hexdigest()})


def load_run(run_dir: Path | str, device: str | torch.device = "cpu") -> tuple[CharClassifier, dict]:
    """Load a run folder's model (in eval mode) and its ``config.json``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train one with `namelab train --out {run_dir}`")
    meta = read_json(run_dir / CONFIG)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{run_dir / CONFIG} holds no JSON object; the run folder is damaged, train it again")
    try:
        config, vocab, labels, expected = meta["config"], meta["vocab"], meta["labels"], meta["weights_sha256"]
    except KeyError as err:
        raise CheckpointError(f"{run_dir / CONFIG} lacks the field {err}; the run folder is damaged") from err
    if not isinstance(expected, str) or not expected:
        raise CheckpointError(
            f"{run_dir / CONFIG} records no checksum of the weights (weights_sha256 is {expected!r}); "
            "the run folder is damaged, train it again"
        )
    weights_path = run_dir / WEIGHTS
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing; the run did not finish saving, train it again")
    blob = weights_path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{weights_path} does not match the checksum in {CONFIG} (expected {expected[:12]}…, "
            f"found {actual[:12]}…): the file is truncated or was modified; train the run again"
        )
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{weights_path} is not a valid safetensors file ({err})") from err
    from .data import Vocab

    try:
        model = model_from_config(config, len(Vocab(vocab)), len(labels))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{run_dir / CONFIG} does not describe a model namelab can build ({err!r}); the run folder is damaged"
        ) from err
    expected_shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found_shapes = {name: tuple(t.shape) for name, t in state.items()}
    if expected_shapes != found_shapes:
        diff = sorted(
            f"{name}: config wants {expected_shapes.get(name)}, file has {found_shapes.get(name)}"
            for name in set(expected_shapes) | set(found_shapes)
            if expected_shapes.get(name) != found_shapes.get(name)
        )
        raise CheckpointError(f"{weights_path} disagrees with {CONFIG}: " + "; ".join(diff[:4]))
    model.load_state_dict(state)
    return model.to(device).eval(), meta
