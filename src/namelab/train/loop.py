"""Train one classifier on one split and write a run folder.

    config = TrainConfig(cell="lstm", epochs=15)
    result = train(config, corpus, out_dir="runs/lstm")
    result.history[-1]["val_accuracy"], result.metrics["macro_f1"]
    train(config, corpus, out_dir="runs/lstm", resume=True)   # after a kill: goes on from the last epoch

The run folder's layout is checkpoint.py's. After every epoch the whole training state
(weights, optimizer, scheduler, every random generator, history, best weights so far)
is written to its checkpoint, so a resumed run ends with the same weights, bit for
bit, as one never stopped. The weights kept are those of the epoch with the best
validation accuracy; the test split is read once, at the end.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import shlex
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.metrics import classification_metrics
from ..core.model import CharClassifier
from ..data.corpus import PAD_ID, UNKNOWN_ID, Corpus, Example, Split, Vocab, batches
from ..data.download import dataset_checksum
from ..inference.backends import logits_in_order
from ..inference.base import Predictor
from ..inference.calibrate import calibrate_predictor
from ..inference.priors import class_shares
from ..inference.unknown import UnknownCheck
from ..runs import checkpoint
from ..runs.card import model_card, reproduce_command
from ..runs.checkpoint import CheckpointError
from ..runs.config import TrainConfig, build_model, resolve_device, run_settings
from ..runs.env import environment
from . import ddp
from .ddp import SINGLE, ProcessGroup, all_reduce_sums, rank_share, share_batch, share_loss


@dataclass
class TrainResult:
    model: CharClassifier
    history: list[dict]
    metrics: dict
    meta: dict = field(default_factory=dict)
    is_main: bool = True  # False on every torchrun rank but 0, which alone writes


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(examples: Sequence[Example], num_classes: int, power: float) -> torch.Tensor:
    counts = torch.bincount(torch.tensor([e.label for e in examples]), minlength=num_classes).float()
    weights = counts.clamp(min=1).pow(-power)
    return weights * (len(examples) / (weights * counts).sum())  # mean weight per example = 1


# -- one epoch, one evaluation -----------------------------------------------------------


def train_epoch(
    model: CharClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    examples: Sequence[Example],
    vocab: Vocab,
    config: TrainConfig,
    weights: torch.Tensor,
    epoch: int,
    on_step: Callable[[], None] = lambda: None,
    group: ProcessGroup = SINGLE,
) -> tuple[float, float]:
    """One pass over ``examples``; mean (unweighted) loss and accuracy of the training batches.

    Under torchrun (``group``), each rank trains on its share of every batch (ddp.py)
    and the returned figures are over all ranks.
    """
    model.train()
    device = weights.device
    fused = device.type in ("cpu", "cuda")
    loss_sum, correct, seen = 0.0, 0, 0
    # Seeded by epoch, not by a running generator: a resumed epoch sees the same batches.
    for ids, lengths, batch_targets in batches(
        examples, vocab, config.batch_size, shuffle=True, seed=config.seed * 100_003 + epoch
    ):
        ids, lengths, targets, scale = share_batch(ids, lengths, batch_targets, group)
        ids, lengths, targets = ids.to(device), lengths.to(device), targets.to(device)
        if config.char_dropout > 0:
            hidden = (torch.rand(ids.shape, device=device) < config.char_dropout) & (ids != PAD_ID)
            ids = ids.masked_fill(hidden, UNKNOWN_ID)
        logits = model(ids, lengths)
        if group.distributed:
            batch_targets = batch_targets.to(device)
            loss = share_loss(logits, targets, batch_targets, weights, config.label_smoothing, group, scale)
        else:
            loss = F.cross_entropy(logits, targets, weight=weights, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm, foreach=fused or None)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            loss_sum += scale * F.cross_entropy(logits, targets, reduction="sum").item()
            correct += scale * (logits.argmax(dim=1) == targets).sum().item()
        seen += scale * len(targets)  # 0 for a rank left without a name
        on_step()
    loss_sum, correct, seen = all_reduce_sums([loss_sum, correct, seen], group, device)
    return loss_sum / seen, correct / seen


@torch.inference_mode()
def predict_examples(
    model: CharClassifier, examples: Sequence[Example], vocab: Vocab, device: torch.device, batch_size: int = 512
) -> tuple[float, list[int], list[int]]:
    """Mean loss, predictions and targets of ``examples``, in their order (batched by length inside)."""
    logits = logits_in_order(model, [e.name for e in examples], vocab, batch_size)  # on the model's device
    targets = torch.tensor([e.label for e in examples], dtype=torch.int64)
    loss = F.cross_entropy(logits, targets, reduction="sum").item() if examples else 0.0
    return loss / max(len(examples), 1), logits.argmax(dim=1).tolist(), targets.tolist()


def validate(
    model: CharClassifier, examples: Sequence[Example], vocab: Vocab, device: torch.device, group: ProcessGroup = SINGLE
) -> tuple[float, float]:
    """Mean loss and accuracy of ``examples``; under torchrun each rank reads its share, the sums all-reduced."""
    share = rank_share(examples, group)
    loss, predicted, true = predict_examples(model, share, vocab, device)
    if not group.distributed:
        return loss, float(np.mean(np.asarray(predicted) == np.asarray(true)))
    correct = sum(p == t for p, t in zip(predicted, true))
    loss_sum, correct, seen = all_reduce_sums([loss * len(share), correct, len(share)], group, device)
    return loss_sum / seen, correct / seen


# -- the driver ------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    corpus: Corpus,
    out_dir: Path | str | None = None,
    *,
    data_dir: Path | None = None,
    split: Split | None = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    force: bool = False,
    between_epochs: Callable[[], object] = lambda: None,
    command: str | None = None,
) -> TrainResult:
    """Train, checkpointing each epoch into ``out_dir``; see :func:`prepare_run_folder` for resume/force.

    ``between_epochs`` runs before each epoch after the first (the CLI adapts torch's
    thread count to the machine's load there). ``command`` is what messages tell the user
    to run to resume (default: a ``namelab train`` line built from ``config``).

    Launched by torchrun, it trains data-parallel (ddp.py): every rank runs this with the
    same arguments, and rank 0 alone writes ``out_dir``.
    """
    group = ddp.init_process_group(resolve_device(config.device))
    try:
        # One writer per run folder (rank 0 writes under torchrun).
        with checkpoint.run_lock(Path(out_dir)) if out_dir is not None and group.is_main else contextlib.nullcontext():
            return _train(config, corpus, out_dir, data_dir, split, log, resume, force, between_epochs, command, group)
    finally:
        ddp.close_process_group()


@dataclass
class TrainState:
    """Everything a resumed run needs, as one object (nanoGPT's checkpoint literal, flattened to safetensors).

    ``record`` adds an epoch's row and keeps the best validation accuracy's weights;
    ``state_dict`` / ``load_state_dict`` round-trip the whole state, random generators included.
    """

    model: CharClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None
    best_accuracy: float = -1.0
    best_epoch: int = 0

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return len(self.history)

    def record(self, row: dict) -> None:
        self.history.append(row)
        if row["val_accuracy"] > self.best_accuracy:
            self.best_accuracy, self.best_epoch = row["val_accuracy"], row["epoch"]
            self.best_state = copy.deepcopy(self.model.state_dict())

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_accuracy": self.best_accuracy,
            "model": self.model.state_dict(),
            "best": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_states(),
        }

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        if len(self.history) != int(state["epoch"]):
            raise ValueError(f"the history holds {len(self.history)} epochs, the checkpoint says {state['epoch']}")
        self.best_accuracy = float(state["best_accuracy"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = {k: v.to(device) for k, v in state["best"].items()}
        _set_rng_states(state["rng"])


@dataclass
class _Run:
    """What the setup hands the epoch loop and the finish: one training's objects, built once."""

    config: TrainConfig
    corpus: Corpus
    split: Split
    device: torch.device
    group: ProcessGroup
    state: TrainState
    trained: torch.nn.Module  # the model, or DDP around it
    weights: torch.Tensor  # the loss weight of each class
    out: Path | None  # None on every rank but 0, and when nothing is written
    command: str
    dataset_sha256: str | None
    log: Callable[[str], None]


def _train(
    config, corpus, out_dir, data_dir, split, log, resume, force, between_epochs, command, group: ProcessGroup
) -> TrainResult:
    run = _setup(config, corpus, out_dir, data_dir, split, log, resume, force, command, group)
    _epochs(run, between_epochs)
    return _finish(run)


def _setup(config, corpus, out_dir, data_dir, split, log, resume, force, command, group: ProcessGroup) -> _Run:
    """The model, optimizer, schedule and run folder; the state restored from its checkpoint on --resume."""
    device = ddp.rank_device(resolve_device(config.device), group)
    if not group.is_main:
        log = lambda line: None  # noqa: E731  one log, rank 0's
    split = split or corpus.split(seed=config.split_seed)
    if not split.train or not split.val:
        raise ValueError("the dataset is too small to split into train and validation sets; add names")
    dataset_sha256 = dataset_checksum(data_dir) if data_dir else None
    seed_everything(config.seed)
    model = build_model(config, len(corpus.vocab), corpus.num_classes).to(device)
    trained = ddp.wrap(model, group, device)  # the model itself, or DDP averaging the ranks' gradients
    if group.distributed:
        torch.manual_seed(config.seed * 1_000_003 + group.rank)  # the same weights, each rank its own dropout
    fused = device.type in ("cpu", "cuda")  # one kernel for the whole AdamW update
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
    )
    total_steps = config.epochs * math.ceil(len(split.train) / config.batch_size)
    # OneCycleLR divides by pct_start * total_steps - 1, zero at exactly 10 steps: warm up a little longer there.
    pct_start = 0.1 if total_steps != 10 else 0.15
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(total_steps, 1), pct_start=pct_start
    )
    weights = class_weights(split.train, corpus.num_classes, config.class_weight_power).to(device)
    state = TrainState(model, optimizer, scheduler)
    out = Path(out_dir) if out_dir is not None else None
    command = command or (train_command(config, out, data_dir, corpus.columns) if out is not None else "")
    if out is not None:
        resuming = ddp.on_main(
            group, device, lambda: prepare_run_folder(
                out, config, resume=resume, force=force, dataset_sha256=dataset_sha256, log=log
            ) is not None
        )
        if resuming:
            _restore(out, state, device)
            log(f"resuming {out} after epoch {state.epoch} of {config.epochs}")
        if not group.is_main:
            out = None  # rank 0 alone writes
    return _Run(config, corpus, split, device, group, state, trained, weights, out, command, dataset_sha256, log)


def _epochs(run: _Run, between_epochs: Callable[[], object]) -> None:
    """Train the remaining epochs, checkpointing each into the run folder."""
    config, state = run.config, run.state
    steps_per_epoch = math.ceil(len(run.split.train) / config.batch_size)
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=state.epoch * steps_per_epoch, leave=False,
               dynamic_ncols=True, disable=None if run.group.is_main else True)  # None: shown on a terminal only
    say = bar.write if not bar.disable else run.log
    first = state.epoch + 1
    try:
        for epoch in range(first, config.epochs + 1):
            if epoch > first:
                between_epochs()
            start = time.perf_counter()
            train_loss, train_accuracy = train_epoch(
                run.trained, state.optimizer, state.scheduler, run.split.train, run.corpus.vocab, config,
                run.weights, epoch, lambda: bar.update(1), run.group,
            )
            seconds = time.perf_counter() - start
            val_loss, val_accuracy = validate(state.model, run.split.val, run.corpus.vocab, run.device, run.group)
            state.record(
                {
                    "epoch": epoch,
                    "seconds": round(seconds, 4),
                    "train_loss": train_loss,
                    "train_accuracy": train_accuracy,
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                }
            )
            say(
                f"[{config.cell}/{config.engine}] epoch {epoch}/{config.epochs}  "
                f"train loss {train_loss:.4f} acc {train_accuracy:.4f}  "
                f"val loss {val_loss:.4f} acc {val_accuracy:.4f}  {seconds:.1f}s"
            )
            if run.out is not None:
                _save_checkpoint(run, state)
    finally:
        bar.close()


def _finish(run: _Run) -> TrainResult:
    """Keep the best epoch's weights, read the test split once, calibrate, and write the run folder."""
    config, corpus, split, model = run.config, run.corpus, run.split, run.state.model
    model.load_state_dict(run.state.best_state)
    _, test_pred, test_true = predict_examples(model, split.test, corpus.vocab, run.device)
    metrics = classification_metrics(test_true, test_pred, corpus.labels)
    meta = {
        "config": asdict(config),
        "vocab": corpus.vocab.chars,
        "labels": corpus.labels,
        "train_prior": class_shares([e.label for e in split.train], corpus.num_classes),
        **split.sizes(),
        "dataset_sha256": run.dataset_sha256,
        "best_epoch": run.state.best_epoch,
        "parameters": model.num_parameters(),
        "device": str(run.device),
        "processes": run.group.world_size,
        "versions": environment(),
        "command": reproduce_command(run.command),
    }
    # The kept model's temperature and conformal scores, fitted on the validation split.
    meta["calibration"], calibration_metrics = calibrate_predictor(Predictor(model, corpus.vocab, corpus.labels), split)
    metrics.update(calibration_metrics)
    history = run.state.history
    if run.out is not None:
        UnknownCheck.fit(split).save(run.out)  # before the manifest, which lists it
        checkpoint.save_run(run.out, model, meta, history, metrics, card=model_card(meta, metrics, history))
        (run.out / checkpoint.CHECKPOINT).unlink(missing_ok=True)  # the manifest is written: nothing left to resume
    return TrainResult(model=model.eval(), history=history, metrics=metrics, meta=meta, is_main=run.group.is_main)


# -- run folders: refuse, resume, start over ------------------------------------------------


def train_command(
    config: TrainConfig, out: Path | None, data_dir: Path | None, columns: tuple[str, str] | None = None
) -> str:
    """The ``namelab train`` command that resumes this run (options that differ from the defaults)."""
    defaults = TrainConfig()
    words = ["namelab", "train"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if value != getattr(defaults, f.name):
            option = f"--{f.name.replace('_', '-')}"
            words += [option] if isinstance(value, bool) else [option, str(value)]  # a flag takes no value
    if data_dir is not None:
        words += ["--data", str(data_dir)]
        if columns is not None:  # a table
            words += ["--name-column", columns[0], "--label-column", columns[1]]
    if out is not None:
        words += ["--out", str(out)]
    return shlex.join(words + ["--resume"])


def prepare_run_folder(
    out: Path, config: TrainConfig, *, resume: bool, force: bool, dataset_sha256: str | None, log: Callable[[str], None]
) -> dict | None:
    """Make ``out`` ready for training; returns the checkpoint's info when training resumes from it.

    A complete run is never overwritten without ``force``; an unfinished one is resumed
    with ``resume`` or started over with ``force``; without either, both are refused.
    Temporary files left by a kill are removed first.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    removed = checkpoint.clean_temp_files(out)
    if removed:
        log(f"removed {', '.join(removed)} from {out}, left by an interrupted write")
    state = checkpoint.run_state(out)
    info = checkpoint.checkpoint_info(out)
    if state == "complete" and not force:
        raise ValueError(
            f"{out} already holds a finished run; pass --force to replace it, or choose another --out"
        )
    if state == "unfinished" and resume and info is not None:
        _check_resumable(out, info, config, dataset_sha256)
        return info
    if resume and not force and info is None and (out / checkpoint.CHECKPOINT).exists():
        # Starting at epoch 1 would quietly throw the trained epochs away: let the user decide.
        raise CheckpointError(
            f"{out / checkpoint.CHECKPOINT} is damaged and cannot be resumed; pass --force to start the run over"
        )
    if state == "unfinished" and not force and not resume:
        raise ValueError(checkpoint.unfinished_message(out) + ", or pass --force to start it over")
    for name in checkpoint.OWNED_FILES:  # --force, or --resume with nothing usable to resume from
        (out / name).unlink(missing_ok=True)
    if resume:
        log(f"nothing to resume in {out}; starting at epoch 1")
    return None


def _check_resumable(out: Path, info: dict, config: TrainConfig, dataset_sha256: str | None) -> None:
    # Read as compare reads it (old names, options added since); the device may change between sessions.
    saved, ours = run_settings(info.get("config")) or {}, run_settings(asdict(config))
    changed = sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))
    if changed:
        shown = ", ".join(f"{k} {saved.get(k)!r} (now {ours.get(k)!r})" for k in changed)
        raise ValueError(
            f"{out} holds a run started with other options: {shown}; resume it with `{info.get('command')}`, "
            f"or pass --force to start over with these"
        )
    if dataset_sha256 and info.get("dataset_sha256") and info["dataset_sha256"] != dataset_sha256:
        raise ValueError(
            f"the dataset differs from the one {out} was started on; pass its --data-dir, or --force to start over"
        )


def _save_checkpoint(run: _Run, state: TrainState) -> None:
    """The state after an epoch, with what a resume checks it against (config, data, command)."""
    tensors: dict[str, torch.Tensor] = {}
    info = {"format": 1, "config": asdict(run.config), "command": run.command, "dataset_sha256": run.dataset_sha256}
    for key, value in state.state_dict().items():
        info[key] = checkpoint.flatten_state(value, key, tensors) if key in _TENSOR_STATE else value
    checkpoint.save_checkpoint(run.out, tensors, info)


_TENSOR_STATE = ("model", "best", "optimizer", "scheduler", "rng")  # flattened into the safetensors half


def _restore(out: Path, state: TrainState, device: torch.device) -> None:
    """Load the checkpoint into ``state``."""
    tensors, info = checkpoint.load_checkpoint(out)
    try:
        flat = {key: checkpoint.unflatten_state(info[key], tensors) for key in _TENSOR_STATE}
        state.load_state_dict({**{k: info[k] for k in ("epoch", "history", "best_epoch", "best_accuracy")}, **flat},
                              device)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{out / checkpoint.CHECKPOINT} cannot be resumed ({err}); pass --force to start over") from err


def _rng_states() -> dict:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
