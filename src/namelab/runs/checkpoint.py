"""Run folders: weights in safetensors, everything else in JSON, every write atomic.

    save_run(run_dir, model, meta, history, metrics, card)   # the five files, then manifest.json
    model, meta = load_run(run_dir)                     # verifies the manifest, checksums and shapes

The layout of a run folder, and its one home (other modules import these names):

    config.json             CONFIG    what was trained, on what, the weights' sha256, the training prior
    model.safetensors       WEIGHTS   the kept (best validation) weights
    history.json            HISTORY   one row per epoch
    metrics.json            METRICS   test-split metrics of the kept weights
    unknown.safetensors     UNKNOWN_STATE  the unknown-language scorer (character models of the train split)
    unknown.json            UNKNOWN_META   its settings and the validation names' scores
    model-card.md           MODEL_CARD  what the model is, for what, how well (card.py)
    manifest.json           MANIFEST  sha256 of each file above, written last
    checkpoint.safetensors  CHECKPOINT  training state after the last finished epoch

A folder is *complete* when its manifest exists and every file matches it; a folder
without one is *unfinished* (training was stopped, or is running) and every reader
refuses it with a message that says how to resume. Training writes the checkpoint
after every epoch and removes it once the manifest is written.

Nothing is ever unpickled: optimizer and scheduler states are flattened into tensors
(safetensors) and JSON (the checkpoint's metadata).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..core.model import CharClassifier
from ..data.corpus import Vocab
from .config import build_model, config_from_dict

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
HISTORY = "history.json"
METRICS = "metrics.json"
MODEL_CARD = "model-card.md"
MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.safetensors"
UNKNOWN_STATE = "unknown.safetensors"  # the unknown-language scorer's tables (inference/unknown.py)
UNKNOWN_META = "unknown.json"  # its settings and validation scores
# What the manifest may list. The card is one of them: an edited or truncated card fails the
# check as a damaged weights file does; folders written before cards (or scorers) existed list none.
RUN_FILES = (CONFIG, WEIGHTS, HISTORY, METRICS, UNKNOWN_STATE, UNKNOWN_META, MODEL_CARD)
# Everything training writes into a run folder: --force removes these and nothing else.
OWNED_FILES = (*RUN_FILES, MANIFEST, CHECKPOINT)
_CHECKPOINT_KEY = "namelab_checkpoint"  # the JSON half of a checkpoint, in the safetensors metadata


class CheckpointError(RuntimeError):
    """A run folder that cannot be loaded: missing, truncated, tampered, unfinished or inconsistent."""


# -- atomic files ----------------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``.

    The temporary file is named ``.<name>.<random>.tmp``; one that a kill leaves behind
    is removed by :func:`clean_temp_files` at the next start.
    """
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


def clean_temp_files(run_dir: Path) -> list[str]:
    """Remove what a kill left, interrupted writes' temporary files and a stale checkpoint (by the lock's holder)."""
    removed = [tmp for name in OWNED_FILES for tmp in Path(run_dir).glob(f".{name}.*.tmp")]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return sorted([tmp.name for tmp in removed] + ([CHECKPOINT] if remove_stale_checkpoint(run_dir) else []))


def remove_stale_checkpoint(run_dir: Path) -> bool:
    """Remove the checkpoint of a complete run: training writes the manifest, then removes the
    checkpoint, and a kill between the two leaves one that nothing would resume."""
    path = Path(run_dir) / CHECKPOINT
    if run_state(run_dir) != "complete" or not path.is_file():
        return False
    path.unlink(missing_ok=True)
    return True


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is {path.parent} a run folder written by `namelab train`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the run folder is damaged, train it again") from err
    except RecursionError:
        raise CheckpointError(f"{path} nests too deeply to be a run file; the run folder is damaged") from None


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- one writer per run folder ---------------------------------------------------------


LOCK = ".namelab.lock"  # not a run file: a finished run has none, and --force leaves it to its owner


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a lock or temporary file of a dead one is stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.namelab.lock`` (our PID) while writing the folder: one writer at a time.

    A second writer is refused with the holder's PID. A lock whose process is gone (a
    kill, a crash) is taken over. The lock is a file created exclusively, so two writers
    starting at once cannot both get it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file; give a folder for the run")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    for _ in range(2):  # the second try follows the removal of a dead process's lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text(encoding="utf-8").split()[0])
            except (OSError, ValueError, IndexError):
                holder = None  # written half by a writer killed at once: no process to wait for
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise CheckpointError(
                    f"{run_dir} is being written by process {holder} (lock file {path}); wait for it to end, or "
                    f"stop it and run again (a lock whose process is gone is taken over)"
                ) from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        break
    else:
        raise CheckpointError(f"could not take the lock {path}; another writer keeps taking it, try again")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a writer that failed before writing anything leaves no empty folder behind


# -- complete or unfinished ------------------------------------------------------------


def start_writing(run_dir: Path) -> None:
    """Remove the manifest before a run folder's files are (re)written: until :func:`write_manifest`
    the folder is unfinished, and every reader refuses it (a kill mid-write leaves it so)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / MANIFEST).unlink(missing_ok=True)


def write_manifest(run_dir: Path) -> None:
    """Record the sha256 of every run file present; written last, it marks the folder complete."""
    run_dir = Path(run_dir)
    files = {name: sha256_file(run_dir / name) for name in RUN_FILES if (run_dir / name).is_file()}
    write_json(run_dir / MANIFEST, {"files": files})


def run_state(run_dir: Path) -> str:
    """``"complete"`` (a manifest), ``"unfinished"`` (a checkpoint or run files, no manifest) or ``"empty"``."""
    run_dir = Path(run_dir)
    if (run_dir / MANIFEST).is_file():
        return "complete"
    if any((run_dir / name).exists() for name in OWNED_FILES):
        return "unfinished"
    return "empty"


def checkpoint_info(run_dir: Path) -> dict | None:
    """The JSON half of a run folder's checkpoint (epoch, config, resume command), or None."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as handle:
            info = json.loads((handle.metadata() or {})[_CHECKPOINT_KEY])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def unfinished_message(run_dir: Path) -> str:
    """What an unfinished run folder holds and how to go on from it."""
    info = checkpoint_info(run_dir)
    if info is None:
        return (
            f"{run_dir} holds an unfinished run with no usable checkpoint (training stopped before its first "
            f"epoch ended, or while it was saving); train it again with `namelab train ... --out {run_dir} --force`"
        )
    return (
        f"{run_dir} holds an unfinished run (stopped after epoch {info.get('epoch')} of "
        f"{info.get('config', {}).get('epochs')}); resume it with `{info.get('command')}`"
    )


def check_complete(run_dir: Path, required: Sequence[str] = (CONFIG, WEIGHTS)) -> None:
    """Raise :class:`CheckpointError` unless ``run_dir`` is a complete run whose files match its manifest.

    ``required``: the files its manifest must list (an ensemble has no weights of its own).
    """
    run_dir = Path(run_dir)
    if run_state(run_dir) != "complete":
        raise CheckpointError(unfinished_message(run_dir))
    manifest = read_json(run_dir / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or any(name not in files for name in required):
        raise CheckpointError(f"{run_dir / MANIFEST} does not list the run's files; the run folder is damaged")
    for name, expected in files.items():
        if name not in RUN_FILES:
            raise CheckpointError(f"{run_dir / MANIFEST} lists {name!r}, which is no run file; the folder is damaged")
        path = run_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing but {MANIFEST} lists it; the run folder is damaged")
        if sha256_file(path) != expected:
            raise CheckpointError(
                f"{path} does not match its checksum in {MANIFEST}: the file was modified or only partly "
                f"written; train the run again"
            )


# -- the finished run ------------------------------------------------------------------


def model_from_config(config: dict, vocab_size: int, num_classes: int) -> CharClassifier:
    """The model a run's ``config`` describes, checked as :class:`~namelab.runs.config.TrainConfig` checks options."""

    return build_model(config_from_dict(config), vocab_size, num_classes)


def save_run(
    run_dir: Path,
    model: CharClassifier,
    meta: dict,
    history: list | None = None,
    metrics: dict | None = None,
    card: str | None = None,
) -> None:
    """Write the weights, ``config.json`` (``meta`` plus the weights' sha256), history, metrics and the
    model card (``card``, Markdown: card.model_card), then the manifest.

    The manifest goes first and comes back last, so a kill at any point leaves a folder
    that readers recognise as unfinished, never one that mixes old and new files.
    """
    run_dir = Path(run_dir)
    start_writing(run_dir)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    blob = save_safetensors(state)
    atomic_write_bytes(run_dir / WEIGHTS, blob)
    write_json(run_dir / CONFIG, {**meta, "weights_sha256": hashlib.sha256(blob).hexdigest()})
    if history is not None:
        write_json(run_dir / HISTORY, history)
    if metrics is not None:
        write_json(run_dir / METRICS, metrics)
    if card is not None:
        atomic_write_bytes(run_dir / MODEL_CARD, card.encode("utf-8"))
    write_manifest(run_dir)


def load_run(run_dir: Path | str, device: str | torch.device = "cpu") -> tuple[CharClassifier, dict]:
    """Load a complete run folder's model (in eval mode) and its ``config.json``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train one with `namelab train --out {run_dir}`")
    if run_state(run_dir) != "complete":
        raise CheckpointError(unfinished_message(run_dir))
    meta = read_json(run_dir / CONFIG)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{run_dir / CONFIG} holds no JSON object; the run folder is damaged, train it again")
    try:
        config, vocab, labels, expected = meta["config"], meta["vocab"], meta["labels"], meta["weights_sha256"]
    except KeyError as err:
        raise CheckpointError(f"{run_dir / CONFIG} lacks the field {err}; the run folder is damaged") from err
    if not isinstance(vocab, str) or not vocab:
        raise CheckpointError(f"{run_dir / CONFIG}: vocab must be a non-empty string of characters, got {vocab!r:.60}")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"{run_dir / CONFIG}: labels must be a non-empty list of strings, got {labels!r:.60}")
    if len(set(labels)) != len(labels):
        raise CheckpointError(f"{run_dir / CONFIG}: labels lists a language twice; the run folder is damaged")
    if not isinstance(expected, str) or not expected:
        raise CheckpointError(
            f"{run_dir / CONFIG} records no checksum of the weights (weights_sha256 is {expected!r}); "
            "the run folder is damaged, train it again"
        )
    check_calibration(meta, run_dir / CONFIG)
    weights_path = run_dir / WEIGHTS
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing; the run did not finish saving, train it again")
    blob = weights_path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{weights_path} does not match the checksum in {CONFIG} (expected {str(expected)[:12]}…, "
            f"found {actual[:12]}…): the file is truncated or was modified; train the run again"
        )
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{weights_path} is not a valid safetensors file ({err})") from err
    try:
        model = model_from_config(config, len(Vocab(vocab)), len(labels))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{run_dir / CONFIG} does not describe a model namelab can build ({err}); the run folder is damaged"
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
    check_complete(run_dir)  # last: the checks above name the exact fault in a damaged file
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def _number(value, what: str, path: Path, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        bounds = f" between {low:g} and {high:g}" if math.isfinite(low) and math.isfinite(high) else ""
        raise CheckpointError(f"{path}: {what} must be a number{bounds}, got {value!r:.60}; the run folder is damaged")
    return float(value)


def check_calibration(meta: dict, path: Path) -> None:
    """``meta["calibration"]`` (if any): a finite temperature above 0 and conformal scores that are numbers in [0, 1].

    A temperature of 0, NaN or below 0 would answer NaN or reverse the ranking of the languages.
    """
    calibration = meta.get("calibration")
    if calibration is None:
        return
    if not isinstance(calibration, dict):
        raise CheckpointError(f"{path}: calibration must be an object, got {calibration!r:.60}; the run folder is damaged")
    temperature = calibration.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        math.isfinite(temperature) and temperature > 0
    ):
        raise CheckpointError(
            f"{path}: calibration.temperature must be a finite number above 0, got {temperature!r:.60}; "
            "the run folder is damaged, train it again"
        )
    scores = calibration.get("conformal_scores") or []
    if not isinstance(scores, list) or not all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in scores
    ):
        raise CheckpointError(
            f"{path}: calibration.conformal_scores must be a list of numbers between 0 and 1, got {scores!r:.60}; "
            "the run folder is damaged, train it again"
        )


HISTORY_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def read_history(run_dir: Path, fields: Sequence[str] = HISTORY_FIELDS) -> list[dict]:
    """``history.json``: a non-empty list of one object per epoch, each of ``fields`` a number.

    A reader that needs fewer fields asks for those: the n-gram baseline and ensembles,
    which train no epochs, record only ``val_accuracy``.
    """
    path = Path(run_dir) / HISTORY
    history = read_json(path)
    if not isinstance(history, list) or not history:
        raise CheckpointError(f"{path} must hold a non-empty JSON list of epochs, got {type(history).__name__}")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: epoch row {i} is a {type(row).__name__}, not an object")
        for field in fields:
            high = 1.0 if field.endswith("accuracy") else math.inf
            _number(row.get(field), f"row {i} {field}", path, 0.0, high)
    return history


def read_metrics(run_dir: Path) -> dict:
    """``metrics.json``: an object with accuracy and macro-F1 in [0, 1], a count and per-class figures."""
    path = Path(run_dir) / METRICS
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got a {type(metrics).__name__}")
    for field in ("accuracy", "macro_f1"):
        _number(metrics.get(field), field, path, 0.0, 1.0)
    n = metrics.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CheckpointError(f"{path}: n must be a whole number of names, got {n!r:.60}")
    if not isinstance(metrics.get("per_class"), dict) or not isinstance(metrics.get("confusion"), list):
        raise CheckpointError(f"{path} lacks per_class (an object) or confusion (a list); the run folder is damaged")
    return metrics


# -- the training checkpoint -----------------------------------------------------------


def flatten_state(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """A JSON-able copy of ``obj`` (a state dict) whose tensors move into ``tensors`` under dotted names."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").clone().contiguous()
        return {"tensor": prefix}
    if isinstance(obj, dict):
        return {"items": [[key, flatten_state(value, f"{prefix}.{key}", tensors)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {kind: [flatten_state(value, f"{prefix}.{i}", tensors) for i, value in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickling it")


def unflatten_state(flat, tensors: dict[str, torch.Tensor]):
    """The inverse of :func:`flatten_state`."""
    (kind, value), = flat.items()
    if kind == "tensor":
        return tensors[value]
    if kind == "items":
        return {key: unflatten_state(item, tensors) for key, item in value}
    if kind == "tuple":
        return tuple(unflatten_state(item, tensors) for item in value)
    if kind == "list":
        return [unflatten_state(item, tensors) for item in value]
    if kind == "value":
        return value
    raise CheckpointError(f"unknown entry {kind!r} in a checkpoint")


def save_checkpoint(run_dir: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """One file, one atomic write: the tensors, and ``info`` (JSON) in the safetensors metadata."""
    blob = save_safetensors(tensors, metadata={_CHECKPOINT_KEY: json.dumps(info, allow_nan=True)})
    atomic_write_bytes(Path(run_dir) / CHECKPOINT, blob)


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no checkpoint to resume from ({CHECKPOINT} is missing)")
    blob = path.read_bytes()
    try:
        tensors = load_safetensors(blob)
        info = checkpoint_info(run_dir)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{path} is damaged ({err}); start the run over with --force") from err
    if info is None:
        raise CheckpointError(f"{path} holds no training state; start the run over with --force")
    return tensors, info


def run_kind(run_dir: Path | str) -> str:
    """``"ensemble"``, ``"ngram"`` or ``"recurrent"``: what ``config.json`` says the folder holds."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return "recurrent"  # load_run explains what is missing
    meta = read_json(path)
    return meta.get("kind", "recurrent") if isinstance(meta, dict) else "recurrent"
