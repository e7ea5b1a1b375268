"""Training configuration and the one place a model is built from it.

    config = TrainConfig(cell="gru", bidirectional=True)    # every field checked here, once
    model = build_model(config, vocab_size=60, num_classes=18)
    config_from_dict(run_meta["config"])                      # a run folder's config, old or new

Run folders store ``asdict(config)`` in ``config.json``; the reader fills options added
since with their defaults and reads the names older folders used (``model`` for the
cell, ``impl`` for the engine).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Callable, Sequence

import torch

from ..core.cells import CELLS
from ..core.model import ENGINES, POOLS, CharClassifier, ModelConfig

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    cell: str = "lstm"  # rnn | lstm | gru
    engine: str = "hand"  # hand: namelab's own cells; fused: torch's nn.RNN/LSTM/GRU running the same weights
    hidden_size: int = 256
    epochs: int = 15
    # Batch 128 at twice the learning rate of batch 64 reached the same validation
    # accuracy in 15 epochs and trains faster (bench/speed.py).
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
    ngram_buckets: int = 0

    def __post_init__(self) -> None:
        """Every option checked here, once: the CLI and run folders show these messages."""
        _choice(self, "cell", CELLS)
        _choice(self, "engine", ENGINES)
        _choice(self, "device", DEVICES)
        _choice(self, "pool", POOLS)
        # Upper bounds far above any use, so that a typo fails here with the option's name,
        # not as an overflow inside torch, numpy's seeding or the C++ kernel.
        _whole(self, "embedding_dim", low=0, high=MAX_WIDTH)
        _whole(self, "hidden_size", low=1, high=MAX_WIDTH)
        _whole(self, "epochs", low=1, high=MAX_EPOCHS)
        _whole(self, "batch_size", low=1, high=MAX_BATCH)
        for name in ("seed", "split_seed"):
            _whole(self, name, low=0, high=MAX_SEED)
        # Above 10 AdamW's first steps already overflow: the run would train a whole epoch of NaN.
        _real(self, "lr", f"a number above 0 and at most {MAX_LR:g}", lambda v: 0 < v <= MAX_LR)
        _real(self, "clip_norm", "a number above 0", lambda v: v > 0)
        _real(self, "weight_decay", "a number of at least 0", lambda v: v >= 0)
        _real(self, "class_weight_power", "a number of at least 0", lambda v: v >= 0)
        for name in ("dropout", "label_smoothing", "char_dropout"):
            _real(self, name, "a number from 0 up to (not including) 1", lambda v: 0 <= v < 1)
        _whole(self, "ngram_buckets", low=0, high=MAX_BUCKETS)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"--bidirectional must be true or false, got {self.bidirectional!r} (bidirectional)")


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _choice(config: TrainConfig, name: str, choices: Sequence[str]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{_option(name)} must be one of {', '.join(choices)}, got {value!r} ({name})")


MAX_WIDTH = 2**16  # hidden size, embedding size
MAX_EPOCHS = 10**6
MAX_BATCH = 2**24
MAX_BUCKETS = 2**28
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
MAX_LR = 10.0


def _whole(config: TrainConfig, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{_option(name)} must be at least {low}, got {value!r:.40} ({name}: a whole number)")
    if value > high:
        raise ValueError(f"{_option(name)} must be at most {high:,}, got {value:,} ({name}: a whole number)")


def _real(config: TrainConfig, name: str, rule: str, ok: Callable[[float], bool]) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{_option(name)} must be {rule}, got {value!r} ({name})")


# Every run folder ever written records these; a config without one is damaged, not old.
MODEL_FIELDS = ("cell", "engine", "hidden_size", "dropout")
# The names run folders written before the cell and the engine were called so.
OLD_NAMES = {"model": "cell", "impl": "engine"}


def _accept_old_names(init: Callable) -> Callable:
    """``TrainConfig(model=..., impl=...)`` as scripts wrote it before: a DeprecationWarning, then today's names."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs) -> None:
        for old, new in OLD_NAMES.items():
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"TrainConfig got {new}= and {old}=, its former name; give {new}= only")
                warnings.warn(f"TrainConfig({old}=...) is now TrainConfig({new}=...)", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    return __init__


TrainConfig.__init__ = _accept_old_names(TrainConfig.__init__)


def current_names(values: dict) -> dict:
    """A run folder's ``config`` with the fields of older folders under today's names."""
    renamed = dict(values)
    for old, new in OLD_NAMES.items():
        if old in renamed:
            if new in renamed:
                raise ValueError(f"config holds both {old!r} and {new!r}, the old and the new name of one field")
            renamed[new] = renamed.pop(old)
    return renamed


def cell_or_kind(meta: dict) -> str:
    """What a run is listed as: a recurrent run's cell (``"gru"``), else its kind (``"ngram"``, ``"ensemble"``).

    Raises KeyError or TypeError when a recurrent run's config names no cell (a damaged file).
    """
    kind = meta.get("kind", "recurrent")
    return str(current_names(meta["config"])["cell"]) if kind == "recurrent" else str(kind)


def config_from_dict(values: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a run folder's ``config``, old or new; options added since take their defaults."""
    if not isinstance(values, dict):
        raise TypeError(f"config must be a JSON object, got {type(values).__name__}")
    values = current_names(values)
    missing = [name for name in MODEL_FIELDS if name not in values]
    if missing:
        raise KeyError(f"config lacks {', '.join(missing)}")
    unknown = sorted(set(values) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown config field(s) {', '.join(unknown)}; was the run written by a newer namelab?")
    return TrainConfig(**values)


def run_settings(values) -> dict | None:
    """What decides a run's model, from a run folder's or checkpoint's ``config`` (read as
    :func:`config_from_dict` reads it), without the device: where a run trains does not change
    it. None for a config that is not one."""
    try:
        return {k: v for k, v in asdict(config_from_dict(values)).items() if k != "device"}
    except (KeyError, TypeError, ValueError):
        return None


def build_model(config: TrainConfig, vocab_size: int, num_classes: int) -> CharClassifier:
    """The one place a classifier is built from a training config (training, run folders, compare)."""
    return CharClassifier(ModelConfig.from_run_config(asdict(config), vocab_size, num_classes))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)
