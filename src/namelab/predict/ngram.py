"""The character n-gram baseline: TF-IDF of 1- to 4-grams and a logistic regression.

    model = NgramModel.fit(split, corpus.labels)        # C chosen on the validation split
    model.save("runs/ngram")                            # model.safetensors + config.json
    load_predictor("runs/ngram").predict(["Nakamura"])

The bar namelab's recurrent models are measured against, trained on the same split,
and a member an ensemble may hold: its errors differ from a recurrent model's. It is
stored like every run (weights in safetensors, the n-gram vocabulary in JSON, nothing
pickled) and scored without scikit-learn's fitted objects: the TF-IDF transform is
restated here (sublinear counts times idf, then unit length), and a test proves it
equal to scikit-learn's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..core.metrics import classification_metrics
from ..data.corpus import Split
from ..runs.checkpoint import (
    CONFIG,
    WEIGHTS,
    CheckpointError,
    atomic_write_bytes,
    check_calibration,
    check_complete,
    read_json,
    start_writing,
    write_json,
    write_manifest,
)
from .base import ModelSummary, Predictor

KIND = "ngram"
C_GRID = (1.0, 3.0, 10.0, 30.0)
NGRAM_RANGE = (1, 4)
ANALYZER = "char_wb"  # n-grams inside word boundaries, each word padded with a space


def _counter(vocabulary: dict[str, int] | None = None):
    from sklearn.feature_extraction.text import CountVectorizer  # scikit-learn is slow to import: on use only

    return CountVectorizer(analyzer=ANALYZER, ngram_range=NGRAM_RANGE, lowercase=True, vocabulary=vocabulary)


@dataclass
class NgramModel:
    features: list[str]  # the n-gram of each column
    idf: np.ndarray  # (F,)
    coef: np.ndarray  # (C, F)
    intercept: np.ndarray  # (C,)
    labels: list[str]
    c: float

    @classmethod
    def fit(cls, split: Split, labels: Sequence[str], c_grid: Sequence[float] = C_GRID) -> "NgramModel":
        """Fit on the train split; ``C`` is the grid value with the best validation accuracy."""
        from sklearn.feature_extraction.text import TfidfVectorizer  # on use only, as in _counter
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(analyzer=ANALYZER, ngram_range=NGRAM_RANGE, sublinear_tf=True, lowercase=True)
        x_train = vectorizer.fit_transform([e.name for e in split.train])
        x_val = vectorizer.transform([e.name for e in split.val])
        y_train = [e.label for e in split.train]
        present = sorted(set(y_train))
        if len(present) != len(labels):
            raise ValueError("every language needs names in the train split to fit the n-gram baseline")
        best = None
        for c in c_grid:
            clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
            accuracy = classification_metrics([e.label for e in split.val], clf.predict(x_val).tolist(), labels)[
                "accuracy"
            ]
            if best is None or accuracy > best[0]:
                best = (accuracy, c, clf)
        _, c, clf = best
        vocabulary = vectorizer.vocabulary_
        features = [""] * len(vocabulary)
        for gram, column in vocabulary.items():
            features[column] = gram
        return cls(features, vectorizer.idf_.copy(), clf.coef_.copy(), clf.intercept_.copy(), list(labels), c)

    def transform(self, names: Sequence[str]):
        """TF-IDF rows of ``names`` (sparse ``(N, F)``), as scikit-learn's ``sublinear_tf`` vectorizer computes them."""
        counts = _counter({gram: i for i, gram in enumerate(self.features)}).transform(names).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        x = counts.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return x.multiply(1.0 / norms[:, None]).tocsr()

    def log_probs(self, names: Sequence[str]) -> torch.Tensor:
        """Log-probabilities ``(N, C)`` of already normalized names."""
        logits = self.transform(names) @ self.coef.T + self.intercept
        return torch.log_softmax(torch.from_numpy(np.asarray(logits)), dim=1).float()

    # -- run folder: weights in safetensors, the n-grams in JSON ---------------------------

    def save(self, run_dir: Path | str, meta: dict | None = None, *, complete: bool = True) -> dict:
        """Write the weights and ``config.json``, then (``complete``) the manifest; returns config.json.

        ``complete=False`` leaves the folder unfinished, for a writer with more files to add
        (train_ngram: calibration, metrics, history), which writes the manifest itself.
        """
        start_writing(run_dir)
        state = {
            "idf": torch.from_numpy(self.idf.astype(np.float32)),
            "coef": torch.from_numpy(self.coef.astype(np.float32)),
            "intercept": torch.from_numpy(self.intercept.astype(np.float32)),
        }
        blob = save_safetensors(state)
        run_dir = Path(run_dir)
        atomic_write_bytes(run_dir / WEIGHTS, blob)
        # hidden_size 0: no recurrent state (the server lists every run's hidden size)
        config = {"model": KIND, "hidden_size": 0, "analyzer": ANALYZER, "ngram_range": list(NGRAM_RANGE), "C": self.c}
        full = {
            "kind": KIND,
            **(meta or {}),
            "config": {**(meta or {}).get("config", {}), **config},
            "labels": self.labels,
            "features": self.features,
            "parameters": int(self.coef.size + self.intercept.size),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
        }
        write_json(run_dir / CONFIG, full)
        if complete:
            write_manifest(run_dir)
        return full

    @classmethod
    def load(cls, run_dir: Path | str) -> tuple["NgramModel", dict]:
        run_dir = Path(run_dir)
        check_complete(run_dir)  # a folder a kill left half-written is refused, whatever it holds
        meta = read_json(run_dir / CONFIG)
        if not isinstance(meta, dict):
            raise CheckpointError(f"{run_dir / CONFIG} holds no JSON object; the run folder is damaged, train it again")
        weights = run_dir / WEIGHTS
        if not weights.is_file():
            raise CheckpointError(f"{weights} is missing; the run did not finish saving, train it again")
        blob = weights.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
            raise CheckpointError(
                f"{weights} does not match the checksum in {CONFIG}: the file is truncated or modified; train it again"
            )
        try:
            state = load_safetensors(blob)
            features, labels, config = meta["features"], meta["labels"], meta["config"]
            idf, coef, intercept = (state[k].double().numpy() for k in ("idf", "coef", "intercept"))
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{run_dir} is not a complete n-gram run (no {err}); train it again") from err
        where = run_dir / CONFIG
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)) or len(
            set(labels)
        ) != len(labels):
            raise CheckpointError(f"{where}: labels must be distinct strings, got {labels!r:.60}; train it again")
        if not (isinstance(features, list) and all(isinstance(x, str) and x for x in features)) or len(
            set(features)
        ) != len(features):
            raise CheckpointError(f"{where}: features must be distinct non-empty n-grams; train it again")
        if not isinstance(config, dict):
            raise CheckpointError(f"{where}: config must be an object, got {config!r:.60}; train it again")
        check_calibration(meta, where)
        if coef.shape != (len(labels), len(features)) or idf.shape != (len(features),) or intercept.shape != (
            len(labels),
        ):
            raise CheckpointError(
                f"{weights} disagrees with {CONFIG}: {coef.shape} weights for {len(labels)} languages and "
                f"{len(features)} n-grams; train it again"
            )
        if not (np.isfinite(idf).all() and np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise CheckpointError(f"{weights} holds values that are not finite numbers; train it again")
        c = config.get("C", 0.0)
        return cls(features, idf, coef, intercept, labels, float(c) if isinstance(c, (int, float)) else 0.0), meta


class NgramPredictor(Predictor):
    """The n-gram baseline's run folder behind the Predictor interface."""

    def __init__(self, ngram, meta: dict):
        self.ngram = ngram
        self.model = ModelSummary(ngram.coef.size + ngram.intercept.size)
        self.vocab = None
        self.labels = list(ngram.labels)
        self.meta = meta
        self.device = torch.device("cpu")

    @classmethod
    def from_folder(cls, run_dir: Path | str) -> "NgramPredictor":
        ngram, meta = NgramModel.load(run_dir)
        return cls(ngram, meta)

    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        return self.ngram.log_probs(normalized) if normalized else torch.empty(0, len(self.labels))
