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
from functools import cached_property
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
from .unknown import UnknownCheck

KIND = "ngram"
C_GRID = (1.0, 3.0, 10.0, 30.0)
NGRAM_RANGE = (1, 4)
ANALYZER = "char_wb"  # n-grams inside word boundaries, each word padded with a space
# What normalized names hold once lowercased, as digits 1..len (0: no symbol): an n-gram of
# up to 4 of them is one integer key in base BASE, distinct for every string and length.
SYMBOLS = "\0 '-?abcdefghijklmnopqrstuvwxyz"
BASE = len(SYMBOLS)


def char_wb_ngrams(text: str, ngram_range: tuple[int, int] = NGRAM_RANGE) -> list[str]:
    """The n-grams scikit-learn's ``char_wb`` analyzer cuts from ``text`` (already lowercased), in its order.

    Each whitespace-separated word is padded with a space; a word shorter than an n
    (padding included) is counted once, whole, and no longer n-grams are cut from it.
    """
    low, high = ngram_range
    grams: list[str] = []
    for word in text.split():
        word = f" {word} "
        size = len(word)
        for n in range(low, high + 1):
            if size <= n:
                grams.append(word)
                break
            grams += [word[i : i + n] for i in range(size - n + 1)]
    return grams


def _symbol_codes() -> np.ndarray:
    table = np.zeros(128, dtype=np.int64)  # 0: outside SYMBOLS (the per-name path reads it)
    for i, ch in enumerate(SYMBOLS):
        table[ord(ch)] = i + 1  # 1 for the separator "\0", so that 0 stays "unknown"
    return table


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

    @cached_property
    def _columns(self) -> dict[str, int]:
        """The column of each n-gram, built once (mapping every feature costs ~30 ms on the full data)."""
        return {gram: i for i, gram in enumerate(self.features)}

    @cached_property
    def _keyed(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The features as integer keys (:func:`gram_keys`), sorted, their columns, and whether
        any feature holds a character outside :data:`SYMBOLS` (then no key stands for it)."""
        keys, cols, exotic = [], [], False
        for col, gram in enumerate(self.features):
            if all(ch in SYMBOLS for ch in gram):
                keys.append(sum(SYMBOLS.index(ch) * BASE ** (len(gram) - 1 - i) for i, ch in enumerate(gram)))
                cols.append(col)
            else:
                exotic = True
        order = np.argsort(np.asarray(keys, dtype=np.int64))
        return np.asarray(keys, dtype=np.int64)[order], np.asarray(cols, dtype=np.int64)[order], exotic

    def _found(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every n-gram of ``names`` that is a feature (repeats kept), row-major."""
        keys, columns, exotic = self._keyed
        # every word padded with a space on both sides, as char_wb does; words apart by two
        # spaces and names by a 0 (no symbol), so that a window across either is ruled out below
        texts = [f" {'  '.join(words)} " if words else "" for words in (name.lower().split() for name in names)]
        codes = np.frombuffer(("\0".join(texts) + "\0").encode("utf-32-le"), dtype=np.uint32)
        table = _symbol_codes()
        if exotic or not names or codes.max() >= len(table) or not table[codes].all():
            return self._found_by_dict(names)
        codes = table[codes] - 1  # 0 for the separator, else the symbol's digit
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1
        row_of = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
        space = codes == SYMBOLS.index(" ")
        rows, cols = [], []
        low, high = NGRAM_RANGE
        key = np.zeros(len(codes), dtype=np.int64)
        ok = np.ones(len(codes), dtype=bool)  # the window holds no separator
        inner_space = np.zeros(len(codes), dtype=bool)  # a space somewhere between the window's ends
        for n in range(1, high + 1):
            width = len(codes) - n + 1
            if width <= 0:
                break
            key = key[:width] * BASE + codes[n - 1 :]
            ok = ok[:width] & (codes[n - 1 :] > 0)
            if n >= 3:
                inner_space = inner_space[:width] | space[n - 2 : n - 2 + width]
            valid = ok & ~inner_space[:width]
            if n == 2:  # two spaces: across words, never inside a padded word
                valid &= ~(space[:width] & space[1:])
            if n < low:
                continue
            at = np.minimum(np.searchsorted(keys, key[valid]), max(len(keys) - 1, 0))
            hit = keys[at] == key[valid] if len(keys) else np.zeros(int(valid.sum()), dtype=bool)
            rows.append(row_of[:width][valid][hit])
            cols.append(columns[at[hit]])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _found_by_dict(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`_found`, one name at a time through :func:`char_wb_ngrams` and a dict: any text."""
        columns = self._columns
        found: list[int] = []
        sizes = np.zeros(len(names), dtype=np.int64)
        for row, name in enumerate(names):
            cols = [j for j in map(columns.get, char_wb_ngrams(name.lower())) if j is not None]
            found += cols
            sizes[row] = len(cols)
        return np.repeat(np.arange(len(names), dtype=np.int64), sizes), np.asarray(found, dtype=np.int64)

    def transform(self, names: Sequence[str]):
        """TF-IDF rows of ``names`` (sparse ``(N, F)``), as scikit-learn's ``sublinear_tf`` vectorizer computes them.

        The n-grams are the windows of the padded words that scikit-learn's ``char_wb``
        analyzer cuts (:func:`char_wb_ngrams`), found for the whole batch at once as integer
        keys (numpy ``searchsorted`` into the features' keys); counting, weighting and
        normalizing are numpy too. A CountVectorizer per call took several times as long
        (bench/predict_parts.py). Text with a character outside :data:`SYMBOLS` takes the
        per-name path (a dict lookup per n-gram), with the same result.
        """
        from scipy.sparse import csr_matrix  # with scikit-learn's other dependencies: on use only

        rows, cols = self._found(names)
        # one key per (row, column): np.unique sorts them by row, then column, and counts repeats
        keys, counts = np.unique(rows * len(self.features) + cols, return_counts=True)
        rows, cols = np.divmod(keys, len(self.features))
        values = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(names)))
        norms[norms == 0] = 1.0
        values *= (1.0 / norms)[rows]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=len(names)))))
        return csr_matrix((values, cols, indptr), shape=(len(names), len(self.features)))

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
        config = {"hidden_size": 0, "analyzer": ANALYZER, "ngram_range": list(NGRAM_RANGE), "C": self.c}
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

    def __init__(self, ngram, meta: dict, unknown: UnknownCheck | None = None):
        self.ngram = ngram
        self.model = ModelSummary(ngram.coef.size + ngram.intercept.size)
        self.vocab = None
        self.labels = list(ngram.labels)
        self.meta = meta
        self.device = torch.device("cpu")
        self.unknown = unknown

    @classmethod
    def from_folder(cls, run_dir: Path | str) -> "NgramPredictor":
        ngram, meta = NgramModel.load(run_dir)
        return cls(ngram, meta, UnknownCheck.load(run_dir))

    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        return self.ngram.log_probs(normalized) if normalized else torch.empty(0, len(self.labels))
