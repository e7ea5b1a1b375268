"""namelab: classify a surname's language with hand-written RNN, LSTM and GRU cells.

    from namelab import Corpus, Predictor, TrainConfig, train
    corpus = Corpus.from_folder("data/names")
    result = train(TrainConfig(model="lstm"), corpus, out_dir="runs/lstm")
    load_predictor("runs/lstm").predict(["Nakamura"])
"""

from .core.cells import CELLS, Cell, GRUCell, LSTMCell, RNNCell  # noqa: E402
from .core.model import CharClassifier, ModelConfig  # noqa: E402
from .data.corpus import Corpus, UnusableName, Vocab, normalize  # noqa: E402
from .data.download import DataError, resolve_data_dir  # noqa: E402
from .predict.base import Predictor  # noqa: E402
from .predict.load import load_predictor
from .runs.checkpoint import CheckpointError, load_run, save_run  # noqa: E402
from .runs.config import TrainConfig
from .train.loop import train  # noqa: E402
from .version import __version__

__all__ = [
    "__version__",
    "load_predictor",
    "CELLS",
    "Cell",
    "CharClassifier",
    "CheckpointError",
    "Corpus",
    "DataError",
    "GRUCell",
    "LSTMCell",
    "ModelConfig",
    "Predictor",
    "RNNCell",
    "TrainConfig",
    "UnusableName",
    "Vocab",
    "load_run",
    "normalize",
    "resolve_data_dir",
    "save_run",
    "train",
]
