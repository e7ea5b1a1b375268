"""How unlike the training languages a name is: character language models and a threshold.

    scorer = UnknownScorer.fit([e.name for e in split.train], [e.label for e in split.train])
    threshold = scorer.threshold_at(scorer.score([e.name for e in split.val]), false_alarm=0.05)
    flagged = scorer.score(normalized_names) > threshold      # "a language namelab was not trained on"
    scorer.save(run_dir)                                      # unknown.safetensors + unknown.json
    UnknownScorer.load(run_dir)

A classifier's top probability is a poor judge of a foreign name: it must share all of its
probability among the languages it knows, and a Finnish ``Aaltonen`` gets a confident
answer (the top probability separates known-language from foreign real names with an
AUROC of 0.61 on one set of real names, 0.48 on the Faker lists below). What tells a foreign name is its spelling. The scorer holds one
character language model per training language: interpolated Kneser-Ney over n-grams of
up to :data:`ORDER` characters, with the name's start padded and its end predicted. A
name's score is its per-character negative log-likelihood (nats, end included) under the
language model that explains it best::

    score(x) = min_c  -log p_c(x) / (len(x) + 1)

so a name typical of any one language, however small, scores low; one that no language's
spelling explains scores high. Measured on real surnames (Faker's per-country lists: 25
locales of the 18 languages, 15,471 names, against 32 locales of other languages, 7,920
names), it ranks foreign names above known-language names with an AUROC of 0.77 (0.80
without the Arabic-script lists, whose transliterations look unlike the folder's romanized
Arabic names), against 0.71 for one model of all training names, 0.65 for the fraction of
unseen trigrams and 0.48 for the preset model's top probability (adding the top
probability to the score lowered the AUROC). With the threshold set at 5 % of validation
names, 5.0 % of the test split is flagged, but 20 % of the real known-language names
are (15 % of the Latin-script ones): real names are further from the names folder than
its own test split is.

Fitting is counting (a second for the names folder); scoring is table lookups, vectorized
over the distinct character windows of a batch of names (numpy ``searchsorted``, one row of
all languages per window), with no model pass: 13 to 25 times the rate of the first
implementation, which looked each window up once per language (bench/predict_parts.py
times both side by side; bench/unknown_reference.py keeps it). The tables are stored in
safetensors and the settings in JSON: nothing is pickled.

The threshold is chosen on validation names, never on test: :meth:`threshold_at` returns
the score above which at most ``false_alarm`` of them fall.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..runs.checkpoint import UNKNOWN_META, UNKNOWN_STATE, CheckpointError, atomic_write_bytes, read_json, write_json

ORDER = 5  # 4 to 6 measured alike (AUROC 0.775-0.776); 3 gives 0.764
ALPHABET = "abcdefghijklmnopqrstuvwxyz '-?"  # what normalize() can emit, case folded; '?' is its unknown
BOUNDARY = 0  # the padding before a name and the symbol that ends it
BASE = len(ALPHABET) + 1
STATE_FILE = UNKNOWN_STATE
META_FILE = UNKNOWN_META
FORMAT = 1
# Ney's discount n1 / (n1 + 2 n2) is kept inside these bounds: a tiny language can have no
# n-gram seen exactly once, and a zero discount would give every unseen character zero.
MIN_DISCOUNT, MAX_DISCOUNT = 0.1, 0.9


def _symbols() -> np.ndarray:
    """The symbol (1..len(ALPHABET)) of each ASCII code, '?' for anything else."""
    table = [ALPHABET.index("?") + 1] * 128
    for i, ch in enumerate(ALPHABET):
        table[ord(ch)] = table[ord(ch.upper())] = i + 1
    return np.array(table, dtype=np.int64)


def _window_keys(names: Sequence[str], order: int) -> tuple[np.ndarray, np.ndarray]:
    """The key of every predicted symbol's window of ``order`` symbols ``(P,)`` and its name's row ``(P,)``.

    A name of n characters predicts n + 1 symbols (its characters, then the end), each
    from the ``order - 1`` symbols before it (the start padded with :data:`BOUNDARY`). A
    window's key is its symbols as base-:data:`BASE` digits, the predicted one last, so
    ``key % BASE**k`` is the window's last k symbols. Rows come in name order.
    In numpy: a call costs a fraction of torch's per-operation overhead, which matters
    for one name.
    """
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    width = int(lengths.max()) if len(names) else 0
    codes = np.frombuffer("".join(names).encode("utf-32-le"), dtype=np.uint32)
    ids = _symbols()[np.minimum(codes, 127)]  # non-ASCII (never from normalize) reads as '?'
    padded = np.full((len(names), order - 1 + width + 1), BOUNDARY, dtype=np.int64)
    inside = np.arange(width)[None, :] < lengths[:, None]  # (N, width)
    padded[:, order - 1 : order - 1 + width][inside] = ids
    keys = np.zeros((len(names), width + 1), dtype=np.int64)  # window t predicts symbol t
    for j in range(order):
        keys = keys * BASE + padded[:, j : j + width + 1]
    valid = np.arange(width + 1)[None, :] <= lengths[:, None]
    return keys[valid], np.nonzero(valid)[0]


def _rows_of(keys: np.ndarray, table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The rows of ``table`` (one per sorted key, then a row of defaults) for ``queries`` ``(P,)`` -> ``(P, G)``."""
    if not keys.size:
        return np.broadcast_to(table[-1], (queries.size, table.shape[1]))
    at = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    return table[np.where(keys[at] == queries, at, keys.size)]


class UnknownScorer:
    """Kneser-Ney character language models of G groups of names (one per language, or one of all).

    The tables of order k, for all groups at once: ``keys[k]`` the sorted keys
    ``group * BASE**k + n-gram``, ``alpha[k]`` the discounted share ``max(c - D, 0) / c(h)``
    of each n-gram; ``context_keys[k]`` the sorted ``group * BASE**(k-1) + context`` and
    ``gamma[k]`` the mass ``D * N1+(h .) / c(h)`` each context leaves to order k - 1.
    Counts are raw at the highest order and continuation counts (distinct left
    neighbours) below, as in Kneser-Ney; order 0 is uniform over the symbols.
    """

    def __init__(self, order: int, groups: int, tables: dict[str, torch.Tensor]):
        self.order = order
        self.groups = groups
        self.tables = tables

    # -- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls, train_names: Sequence[str], train_labels: Sequence[int] | None = None, *, order: int = ORDER
    ) -> UnknownScorer:
        """Count the n-grams of normalized ``train_names``, per label when ``train_labels`` are given.

        With labels (recommended), a name's score is that of the language that explains it
        best; without, of one model of all names (measured weaker: see the module docstring).
        """
        if not 1 <= order <= 8:
            raise ValueError(f"order must be between 1 and 8 characters, got {order}")
        if not train_names:
            raise ValueError("no training names to fit the unknown-language scorer on")
        if train_labels is None:
            train_labels = [0] * len(train_names)
        if len(train_labels) != len(train_names):
            raise ValueError(f"{len(train_names)} names but {len(train_labels)} labels; give one label per name")
        labels = torch.tensor(list(train_labels), dtype=torch.int64)
        if int(labels.min()) < 0:
            raise ValueError("labels must be class indices (0, 1, ...), not negative numbers")
        groups = int(labels.max()) + 1
        keys, rows = (torch.from_numpy(a) for a in _window_keys(list(train_names), order))
        group_of = labels[rows]
        tables: dict[str, torch.Tensor] = {}
        grams, counts = torch.unique(group_of * BASE**order + keys, return_counts=True)
        for k in range(order, 0, -1):
            group = grams // BASE**k
            ngram = grams % BASE**k
            discount = _discount(counts)
            contexts, inverse = torch.unique(group * BASE ** (k - 1) + ngram // BASE, return_inverse=True)
            total = torch.zeros(contexts.numel(), dtype=torch.float64).index_add_(0, inverse, counts.double())
            types = torch.bincount(inverse, minlength=contexts.numel()).double()
            tables[f"keys{k}"] = grams
            tables[f"alpha{k}"] = ((counts.double() - discount).clamp(min=0.0) / total[inverse]).float()
            tables[f"context_keys{k}"] = contexts
            tables[f"gamma{k}"] = (discount * types / total).float()
            if k > 1:  # the next order down counts distinct left neighbours (Kneser-Ney continuation)
                grams, counts = torch.unique(group * BASE ** (k - 1) + ngram % BASE ** (k - 1), return_counts=True)
        return cls(order, groups, tables)

    # -- scoring -------------------------------------------------------------------------

    @cached_property
    def _rows(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per order k, the stored tables regrouped by n-gram: one row of G values per distinct n-gram.

        ``(grams, alpha, contexts, gamma)``: the sorted distinct n-grams (and contexts) of
        any group, and their ``(U + 1, G)`` float64 rows, where a group that never saw the
        n-gram holds the default (alpha 0, gamma 1) and the last row is all defaults, for
        an n-gram no group saw. Built from the stored tables on first use (tens of ms for
        the names folder): the file format is unchanged, and a window is looked up once
        for all groups instead of once per group.
        """
        rows = []
        for k in range(1, self.order + 1):
            regrouped = []
            for keys, values, width, default in (
                (self.tables[f"keys{k}"], self.tables[f"alpha{k}"], BASE**k, 0.0),
                (self.tables[f"context_keys{k}"], self.tables[f"gamma{k}"], BASE ** (k - 1), 1.0),
            ):
                keys = keys.numpy()
                distinct, at = np.unique(keys % width, return_inverse=True)
                table = np.full((distinct.size + 1, self.groups), default, dtype=np.float64)
                table[at.ravel(), keys // width] = values.double().numpy()
                regrouped += [distinct, table]
            rows.append(tuple(regrouped))
        return rows

    def log_likelihoods(self, normalized: Sequence[str], chunk: int = 50_000) -> tuple[torch.Tensor, torch.Tensor]:
        """Per name and group, ``log p_g(name)`` ``(N, G)`` (float64), and the symbols predicted ``(N,)``.

        A window's probability depends on its ``order`` symbols only, so each distinct
        window of a chunk is computed once, for all groups (names share most windows).
        """
        out = np.zeros((len(normalized), self.groups), dtype=np.float64)
        counts = np.zeros(len(normalized), dtype=np.int64)
        for start in range(0, len(normalized), chunk):
            names = list(normalized[start : start + chunk])
            keys, rows = _window_keys(names, self.order)
            distinct, inverse = np.unique(keys, return_inverse=True)  # (U,), (P,)
            prob = np.full((distinct.size, self.groups), 1.0 / BASE, dtype=np.float64)
            for k, (grams, alpha, contexts, gamma) in enumerate(self._rows, start=1):
                ngram = distinct % BASE**k
                prob = _rows_of(grams, alpha, ngram) + _rows_of(contexts, gamma, ngram // BASE) * prob
            sizes = np.bincount(rows, minlength=len(names))  # every name predicts at least its end
            out[start : start + len(names)] = np.add.reduceat(np.log(prob)[inverse.ravel()], np.cumsum(sizes) - sizes)
            counts[start : start + len(names)] = sizes
        return torch.from_numpy(out), torch.from_numpy(counts)

    def score(self, normalized: Sequence[str]) -> torch.Tensor:
        """How unlike every training language each name is ``(N,)`` (float32; higher: more foreign).

        The per-character negative log-likelihood under the group that explains the name best.
        """
        if not len(normalized):
            return torch.empty(0)
        log_likelihoods, counts = self.log_likelihoods(normalized)
        return (-log_likelihoods.max(dim=1).values / counts).float()

    @staticmethod
    def threshold_at(val_scores: torch.Tensor | Sequence[float], false_alarm: float = 0.05) -> float:
        """The smallest threshold above which at most ``false_alarm`` of ``val_scores`` lie.

        ``scores > threshold`` then flags ``floor(false_alarm * n)`` validation names or
        fewer (fewer only where scores tie at the threshold).
        """
        if not 0.0 <= false_alarm < 1.0:
            raise ValueError(f"false_alarm must be in [0, 1), e.g. 0.05; got {false_alarm}")
        scores = torch.as_tensor(val_scores, dtype=torch.float64).flatten()
        if scores.numel() == 0:
            raise ValueError("no validation scores to set the threshold on")
        if not torch.isfinite(scores).all():
            raise ValueError("the validation scores hold NaN or infinite values")
        ordered = scores.sort().values
        allowed = math.floor(false_alarm * scores.numel() + 1e-9)  # names that may lie above
        return float(ordered[scores.numel() - 1 - allowed])

    # -- storage: tables in safetensors, settings in JSON --------------------------------

    def save(self, folder: Path | str, threshold: float | None = None, meta: dict | None = None) -> None:
        """Write ``unknown.safetensors`` and ``unknown.json`` (order, groups, checksum, threshold) into ``folder``."""
        folder = Path(folder)
        blob = save_safetensors({name: tensor.contiguous() for name, tensor in self.tables.items()})
        atomic_write_bytes(folder / STATE_FILE, blob)
        info = {
            "format": FORMAT,
            "order": self.order,
            "groups": self.groups,
            "alphabet": ALPHABET,
            "threshold": threshold,
            "sha256": hashlib.sha256(blob).hexdigest(),
            **(meta or {}),
        }
        write_json(folder / META_FILE, info)

    @classmethod
    def load(cls, folder: Path | str) -> tuple[UnknownScorer, dict]:
        """The scorer saved in ``folder`` and its JSON (``info["threshold"]`` is the stored threshold)."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file() or not (folder / STATE_FILE).is_file():
            raise CheckpointError(f"{folder} holds no unknown-language scorer ({META_FILE} and {STATE_FILE})")
        info = read_json(folder / META_FILE)
        blob = (folder / STATE_FILE).read_bytes()
        if info.get("format") != FORMAT or info.get("alphabet") != ALPHABET:
            raise CheckpointError(
                f"{folder / META_FILE} was written by another version of namelab; fit the scorer again"
            )
        if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
            raise CheckpointError(
                f"{folder / STATE_FILE} does not match its checksum: truncated or modified; fit it again"
            )
        tables = load_safetensors(blob)
        order = int(info["order"])
        missing = [f"{name}{k}" for k in range(1, order + 1) for name in ("keys", "alpha", "context_keys", "gamma")]
        missing = [name for name in missing if name not in tables]
        if missing:
            raise CheckpointError(f"{folder / STATE_FILE} lacks the tables {', '.join(missing)}; fit the scorer again")
        return cls(order, int(info["groups"]), tables), info


def _discount(counts: torch.Tensor) -> float:
    n1 = int((counts == 1).sum())
    n2 = int((counts == 2).sum())
    discount = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
    return min(max(discount, MIN_DISCOUNT), MAX_DISCOUNT)


# -- in a run folder --------------------------------------------------------------------

DEFAULT_FALSE_ALARM = 0.05  # share of in-domain validation names flagged: the default threshold


class UnknownCheck:
    """A run's scorer and its validation scores: the threshold for any false-alarm rate.

        check = UnknownCheck.fit(split)                   # train names fit it, validation names set it
        check.save(run_dir)
        check = UnknownCheck.load(run_dir)                # None when the run has no scorer
        check.scorer.score(names) > check.threshold(0.05)
    """

    def __init__(self, scorer: UnknownScorer, validation_scores: torch.Tensor):
        self.scorer = scorer
        self.validation_scores = validation_scores.double().sort().values

    @classmethod
    def fit(cls, split) -> "UnknownCheck":
        """Fit on the train split's names and languages; score the validation names (never test)."""
        scorer = UnknownScorer.fit([e.name for e in split.train], [e.label for e in split.train])
        return cls(scorer, scorer.score([e.name for e in split.val]))

    def threshold(self, false_alarm: float = DEFAULT_FALSE_ALARM) -> float:
        if not 0.0 < false_alarm < 1.0:
            raise ValueError(f"the unknown-language false-alarm rate must be between 0 and 1, got {false_alarm}")
        return UnknownScorer.threshold_at(self.validation_scores, false_alarm)

    def save(self, run_dir: Path | str) -> None:
        # Unrounded: a rounded score could fall below its own threshold, and the name that set it be flagged.
        scores = [float(s) for s in self.validation_scores]
        self.scorer.save(
            run_dir,
            threshold=self.threshold(DEFAULT_FALSE_ALARM),
            meta={"false_alarm": DEFAULT_FALSE_ALARM, "validation_scores": scores},
        )

    @classmethod
    def load(cls, run_dir: Path | str) -> "UnknownCheck | None":
        run_dir = Path(run_dir)
        if not (run_dir / META_FILE).exists() and not (run_dir / STATE_FILE).exists():
            return None
        scorer, info = UnknownScorer.load(run_dir)
        scores = info.get("validation_scores")
        if not isinstance(scores, list) or not scores or not all(
            isinstance(s, (int, float)) and math.isfinite(s) for s in scores
        ):
            raise CheckpointError(
                f"{run_dir / META_FILE} holds no usable validation_scores; train the run again"
            )
        return cls(scorer, torch.tensor(scores, dtype=torch.float64))
