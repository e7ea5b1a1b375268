"""namelab: the language of a surname, from character-level RNN, LSTM and GRU models written by hand.

    import namelab
    namelab.predict(["Nakamura", "Nguyen"])           # the model shipped in the package
    namelab.predict_df(df, "surname")                 # a pandas DataFrame, prediction columns appended
    predictor = namelab.load("runs/gru")              # any run folder: predictor.predict(names)

    from namelab import Corpus, TrainConfig, train     # train your own
    corpus = Corpus.from_folder("data/names")
    train(TrainConfig(cell="gru"), corpus, out_dir="runs/gru")
"""

from .api import load, predict, predict_df
from .core.cells import CELLS, Cell, GRUCell, LSTMCell, RNNCell
from .core.model import CharClassifier, ModelConfig
from .data.corpus import Corpus, UnusableName, Vocab, normalize
from .data.download import DataError, resolve_data_dir
from .inference.base import Predictor
from .inference.load import load_predictor
from .runs.checkpoint import CheckpointError, load_run, save_run
from .runs.config import TrainConfig
from .train.loop import train
from .version import __version__

__all__ = [
    "__version__",
    "predict",
    "predict_df",
    "load",
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
