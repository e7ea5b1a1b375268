"""namelab: the language of a surname, from character-level RNN, LSTM and GRU models written by hand.

    import namelab
    namelab.predict(["Nakamura", "Nguyen"])           # the model shipped in the package
    namelab.predict_df(df, "surname")                 # a pandas DataFrame, prediction columns appended
    predictor = namelab.load("runs/gru")              # any run folder: predictor.predict(names)

    from namelab import Corpus, TrainConfig, train     # train your own
    corpus = Corpus.from_folder("data/names")
    train(TrainConfig(cell="gru"), corpus, out_dir="runs/gru")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import train as _train_package  # noqa: F401  (the subpackage, loaded first: see below)
from .version import __version__

# Where each public name lives. Each is imported on first use, so that `import namelab`
# costs milliseconds and the `namelab` command answers Ctrl-C during its imports with one
# line (cli.main), not a traceback from torch's.
_PUBLIC = {
    "load": "api",
    "predict": "api",
    "predict_df": "api",
    "load_predictor": "inference.load",
    "CELLS": "core.cells",
    "Cell": "core.cells",
    "GRUCell": "core.cells",
    "LSTMCell": "core.cells",
    "RNNCell": "core.cells",
    "CharClassifier": "core.model",
    "ModelConfig": "core.model",
    "Corpus": "data.corpus",
    "UnusableName": "data.corpus",
    "Vocab": "data.corpus",
    "normalize": "data.corpus",
    "DataError": "data.download",
    "resolve_data_dir": "data.download",
    "Predictor": "inference.base",
    "CheckpointError": "runs.checkpoint",
    "load_run": "runs.checkpoint",
    "save_run": "runs.checkpoint",
    "TrainConfig": "runs.config",
    "train": "train.loop",
}
# `namelab.train` is the function; the subpackage of the same name was imported above so that
# its first import (which would bind the module to this name) is over. It stays reachable as
# sys.modules["namelab.train"] and through `from namelab.train.loop import ...`.
del globals()["train"]

__all__ = ["__version__", *_PUBLIC]


_SUBPACKAGES = ("api", "core", "data", "runs", "inference", "report", "experiment", "serve", "cli")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        # `import namelab; namelab.runs.checkpoint`: the modules behind the public names are loaded
        # first, so a subpackage holds what it held when `import namelab` loaded them all.
        for home in dict.fromkeys(_PUBLIC.values()):
            importlib.import_module(f".{home}", __name__)
        return importlib.import_module(f".{name}", __name__)
    if name not in _PUBLIC:
        raise AttributeError(f"module 'namelab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors read (re-exported through __all__)
    from .api import load, predict, predict_df  # noqa: F401
    from .core.cells import CELLS, Cell, GRUCell, LSTMCell, RNNCell  # noqa: F401
    from .core.model import CharClassifier, ModelConfig  # noqa: F401
    from .data.corpus import Corpus, UnusableName, Vocab, normalize  # noqa: F401
    from .data.download import DataError, resolve_data_dir  # noqa: F401
    from .inference.base import Predictor  # noqa: F401
    from .inference.load import load_predictor  # noqa: F401
    from .runs.checkpoint import CheckpointError, load_run, save_run  # noqa: F401
    from .runs.config import TrainConfig  # noqa: F401
    from .train.loop import train  # noqa: F401
