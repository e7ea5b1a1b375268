"""Train one classifier on one split and write a run folder.

    config = TrainConfig(model="lstm", epochs=15)
    result = train(config, corpus, out_dir="runs/lstm")
    result.history[-1]["val_accuracy"], result.metrics["macro_f1"]

The run folder holds ``config.json``, ``model.safetensors``, ``history.json`` and
``metrics.json`` (test split). The weights kept are those of the epoch with the best
validation accuracy; the test split is read once, at the end.
"""

from __future__ import annotations

import copy
import math
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .calibrate import calibrate_predictor
from .checkpoint import save_run, write_json
from .data import PAD_ID, UNKNOWN_ID, Corpus, Example, Split, Vocab, batches
from .download import dataset_checksum
from .metrics import classification_metrics
from .model import CharClassifier, ModelConfig
from .predict import Predictor


@dataclass(frozen=True)
class TrainConfig:
    model: str = "lstm"
    impl: str = "hand"
    hidden_size: int = 256
    epochs: int = 15
    # Batch 128 at twice the learning rate of batch 64 reached the same validation
    # accuracy in 15 epochs and trains about a fifth faster (bench/speed.py).
    batch_size: int = 128
    lr: float = 6e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5
    clip_norm: float = 1.0
    class_weight_power: float = 0.3  # loss weight of a class ∝ (1 / its frequency) ** power; 0 = unweighted
    label_smoothing: float = 0.0
    char_dropout: float = 0.0  # chance that a training character is read as the unknown symbol
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    # The accuracy options (model.ModelConfig); the defaults are the seed experiment's model.
    bidirectional: bool = False
    pool: str = "last"
    embedding_dim: int = 0


@dataclass
class TrainResult:
    model: CharClassifier
    history: list[dict]
    metrics: dict
    meta: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(examples: Sequence[Example], num_classes: int, power: float) -> torch.Tensor:
    counts = torch.bincount(torch.tensor([e.label for e in examples]), minlength=num_classes).float()
    weights = counts.clamp(min=1).pow(-power)
    return weights * (len(examples) / (weights * counts).sum())  # mean weight per example = 1


@torch.inference_mode()
def predict_examples(
    model: CharClassifier, examples: Sequence[Example], vocab: Vocab, device: torch.device, batch_size: int = 512
) -> tuple[float, list[int], list[int]]:
    """Mean loss, predictions and targets (in batch order) of ``examples``."""
    model.eval()
    total_loss, predictions, targets = 0.0, [], []
    for ids, lengths, target in batches(examples, vocab, batch_size):
        log_probs = model(ids.to(device), lengths.to(device))
        total_loss += F.nll_loss(log_probs, target.to(device), reduction="sum").item()
        predictions += log_probs.argmax(dim=1).tolist()
        targets += target.tolist()
    return total_loss / max(len(examples), 1), predictions, targets


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    return {
        "cpu": cpu_name(),
        "namelab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def train(
    config: TrainConfig,
    corpus: Corpus,
    out_dir: Path | str | None = None,
    *,
    data_dir: Path | None = None,
    split: Split | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    device = resolve_device(config.device)
    split = split or corpus.split(seed=config.split_seed)
    if not split.train or not split.val:
        raise ValueError("the dataset is too small to split into train and validation sets; add names")
    seed_everything(config.seed)
    vocab = corpus.vocab
    model = CharClassifier.from_config(ModelConfig.from_run_config(asdict(config), len(vocab), corpus.num_classes))
    model = model.to(device)
    # The fused AdamW updates every tensor in one kernel: a third of the step's time here.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
    )
    steps_per_epoch = math.ceil(len(split.train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(total_steps, 1), pct_start=0.1
    )
    weights = class_weights(split.train, corpus.num_classes, config.class_weight_power).to(device)
    progress = _Progress(total_steps)
    history: list[dict] = []
    best_state, best_accuracy = None, -1.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for ids, lengths, targets in batches(
            split.train, vocab, config.batch_size, shuffle=True, seed=config.seed * 100_003 + epoch
        ):
            ids, lengths, targets = ids.to(device), lengths.to(device), targets.to(device)
            if config.char_dropout > 0:
                hidden = (torch.rand(ids.shape, device=device) < config.char_dropout) & (ids != PAD_ID)
                ids = ids.masked_fill(hidden, UNKNOWN_ID)
            log_probs = model(ids, lengths)
            # log_softmax is idempotent, so cross_entropy on log-probabilities is the weighted NLL (+ smoothing)
            loss = F.cross_entropy(log_probs, targets, weight=weights, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm, foreach=fused or None)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                loss_sum += F.nll_loss(log_probs, targets, reduction="sum").item()
                correct += (log_probs.argmax(dim=1) == targets).sum().item()
            seen += len(targets)
            progress.update(1)
        seconds = time.perf_counter() - start
        val_loss, val_pred, val_true = predict_examples(model, split.val, vocab, device)
        val_accuracy = float(np.mean(np.asarray(val_pred) == np.asarray(val_true)))
        row = {
            "epoch": epoch,
            "seconds": round(seconds, 4),
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        history.append(row)
        if val_accuracy > best_accuracy:
            best_accuracy, best_state = val_accuracy, copy.deepcopy(model.state_dict())
        progress.write(
            f"[{config.model}/{config.impl}] epoch {epoch}/{config.epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}  "
            f"val loss {val_loss:.4f} acc {val_accuracy:.4f}  {seconds:.1f}s",
            log,
        )
    progress.close()
    model.load_state_dict(best_state)
    _, test_pred, test_true = predict_examples(model, split.test, vocab, device)
    metrics = classification_metrics(test_true, test_pred, corpus.labels)
    meta = {
        "config": asdict(config),
        "vocab": vocab.chars,
        "labels": corpus.labels,
        **split.sizes(),
        "dataset_sha256": dataset_checksum(data_dir) if data_dir else None,
        "best_epoch": max(history, key=lambda r: r["val_accuracy"])["epoch"],
        "parameters": model.num_parameters(),
        "device": str(device),
        "versions": environment(),
    }
    # The kept model's temperature and conformal scores, fitted on the validation split.
    meta["calibration"], calibration_metrics = calibrate_predictor(Predictor(model, vocab, corpus.labels), split)
    metrics.update(calibration_metrics)
    if out_dir is not None:
        out = Path(out_dir)
        save_run(out, model, meta)
        write_json(out / "history.json", history)
        write_json(out / "metrics.json", metrics)
    return TrainResult(model=model.eval(), history=history, metrics=metrics, meta=meta)


class _Progress:
    """A tqdm bar on a terminal; elsewhere nothing but the per-epoch log lines."""

    def __init__(self, total: int):
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, leave=False, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def write(self, line: str, log: Callable[[str], None]) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
