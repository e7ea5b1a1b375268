"""namelab: classify a surname's language with hand-written RNN, LSTM and GRU cells.

    from namelab import Corpus, Predictor, TrainConfig, train
    corpus = Corpus.from_folder("data/names")
    result = train(TrainConfig(model="lstm"), corpus, out_dir="runs/lstm")
    Predictor.from_run("runs/lstm").predict(["Nakamura"])
"""

__version__ = "0.1.0"

from .cells import CELLS, Cell, GRUCell, LSTMCell, RNNCell  # noqa: E402
from .checkpoint import CheckpointError, load_run, save_run  # noqa: E402
from .data import Corpus, UnusableName, Vocab, normalize  # noqa: E402
from .download import DataError, resolve_data_dir  # noqa: E402
from .model import CharClassifier, ModelConfig  # noqa: E402
from .predict import Predictor  # noqa: E402
from .train import TrainConfig, train  # noqa: E402

__all__ = [
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
