"""Predictor: names in, ranked languages out, batched under ``torch.inference_mode``.

    predictor = load_predictor("runs/lstm")
    predictor.predict(["Nakamura", "Schmidt"], top_k=3)
    # [{"name": "Nakamura", "normalized": "Nakamura",
    #   "predictions": [{"language": "Japanese", "probability": 0.99}, ...]}, ...]

A name that cannot be classified gets ``{"name": ..., "error": ...}`` in its place;
the output always has one entry per input, in order.

Probabilities are calibrated with the temperature stored in the run's ``config.json``
(fitted on the validation split, see calibrate.py). Two optional fields say how sure
the answer is::

    predictor.predict(["Nguyen"], min_confidence=0.5, coverage=0.9)
    # [{..., "uncertain": False, "coverage_set": ["Vietnamese"]}]

``uncertain`` is true when the top language's calibrated probability is below
``min_confidence``; ``coverage_set`` lists the smallest group of top languages that holds
the true one for ``coverage`` of names like the validation split's (split-conformal).

``load_predictor`` (load.py) reads any run folder: a recurrent model's (this class), the
n-gram baseline's (ngram.py) or an ensemble's (ensemble.py, the average of its members'
calibrated probabilities); all three answer through the same methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..core.model import CharClassifier
from ..data.corpus import UnusableName, Vocab, normalize
from ..runs.checkpoint import load_run
from .backends import make_backend
from .calibrate import conformal_threshold, prediction_sets
from .priors import TRAIN_PRIOR, resolve_prior, reweight
from .unknown import DEFAULT_FALSE_ALARM, UnknownCheck


def ranked(probs: torch.Tensor, labels: Sequence[str], top_k: int) -> list[list[dict]]:
    """Top-k ``{"language", "probability"}`` of each row of ``probs`` (N, C), best first.

    Probabilities are rounded to 6 decimals (as ``round(p, 6)``: the division of an
    integer by 10**6 is correctly rounded), in torch, and the entries are built in one
    flat pass rather than a loop per row, which costs more (docs/benchmarks.md).
    """
    values, indices = probs.topk(min(top_k, len(labels)), dim=1)
    k = values.shape[1]
    values = values.double().mul_(1e6).round_().div_(1e6)
    flat = [
        {"language": labels[j], "probability": p} for p, j in zip(values.view(-1).tolist(), indices.view(-1).tolist())
    ]
    return [flat[start : start + k] for start in range(0, len(flat), k)]


class Predictor:
    """A recurrent model's run behind one interface: ``predict(names)`` and its parts.

    ``unknown`` is the run's unknown-language scorer (unknown.py) with its stored
    validation scores, or None for a run written without one.
    """

    def __init__(
        self,
        model: CharClassifier,
        vocab: Vocab,
        labels: list[str],
        meta: dict | None = None,
        backend: str = "torch",
        unknown: UnknownCheck | None = None,
    ):
        self.model = model.eval()
        self.vocab = vocab
        self.labels = labels
        self.meta = meta or {}
        self.device = next(model.parameters()).device
        self.backend = make_backend(self.model, vocab, backend)  # what runs the forward pass (backends.py)
        self.unknown = unknown

    @property
    def temperature(self) -> float:
        """The temperature fitted on the validation split (1.0 for a run written without one)."""
        return float((self.meta.get("calibration") or {}).get("temperature", 1.0))

    @property
    def conformal_scores(self) -> list[float]:
        return (self.meta.get("calibration") or {}).get("conformal_scores") or []

    def coverage_threshold(self, coverage: float) -> float:
        """The calibrated cumulative probability that a ``coverage`` set must reach."""
        if not self.conformal_scores:
            raise ValueError(
                "this run holds no conformal calibration (config.json has no calibration.conformal_scores); "
                "train it again to get coverage sets"
            )
        return conformal_threshold(self.conformal_scores, coverage)

    @classmethod
    def from_folder(
        cls, run_dir: Path | str, device: str | torch.device = "cpu", backend: str = "torch"
    ) -> "Predictor":
        """The predictor of a recurrent model's run folder (``load_predictor`` reads every kind).

        ``backend`` runs the model: ``torch``, ``onnx`` (onnxruntime) or ``auto`` (backends.py).
        """
        model, meta = load_run(run_dir, device=device)
        return cls(model, Vocab(meta["vocab"]), meta["labels"], meta, backend=backend, unknown=UnknownCheck.load(run_dir))

    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """Uncalibrated logits ``(N, C)`` of already normalized names, in input order."""
        return self.backend.scores(normalized, batch_size)

    def probabilities(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """Calibrated class probabilities ``(N, C)`` of already normalized names, in input order (training prior)."""
        # logits or log-probabilities alike: the softmax ignores a per-row constant
        return torch.softmax(self.scores(normalized, batch_size) / self.temperature, dim=1)

    @property
    def train_prior(self) -> torch.Tensor:
        """The languages' shares in the training split, which the calibrated probabilities carry."""
        shares = self.meta.get("train_prior")
        if shares is None:
            raise ValueError(
                "this run records no training prior (config.json has no train_prior): it was written by an older "
                "namelab; train it again to predict with another --prior"
            )
        return torch.tensor(shares, dtype=torch.float64)

    def target_prior(self, prior: str | Path | torch.Tensor, probs: torch.Tensor | None = None) -> torch.Tensor | None:
        """The prior ``prior`` names (priors.py), or None for the training prior (nothing to re-weight)."""
        if isinstance(prior, torch.Tensor):
            return prior.double()
        if str(prior) == TRAIN_PRIOR:
            return None
        return resolve_prior(str(prior), self.labels, self.train_prior, probs)

    def with_prior(self, probs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """``probs`` under the training prior re-weighted to ``target`` (unchanged for None)."""
        return probs if target is None else reweight(probs, self.train_prior, target)

    def describe(
        self,
        probs: torch.Tensor,
        top_k: int = 3,
        *,
        min_confidence: float | None = None,
        coverage: float | None = None,
        unknown_scores: torch.Tensor | None = None,
        false_alarm: float = DEFAULT_FALSE_ALARM,
        set_probs: torch.Tensor | None = None,
        rows: list[dict] | None = None,
    ) -> list[dict]:
        """Per row of ``probs``: ``{"predictions": top-k}``, plus the flags asked for.

        ``rows`` (one dict per row of ``probs``) are filled in place and returned instead
        of new dicts: ``predict`` hands its result rows, which saves a dict and a merge per name.

        ``uncertain`` and ``coverage_set`` when ``min_confidence`` and ``coverage`` are set;
        ``unknown_language`` and ``unknown_score`` when ``unknown_scores`` are given (the
        threshold is the run's, at ``false_alarm`` of validation names). Coverage sets are
        built from ``set_probs`` (default ``probs``): the probabilities under the training
        prior, the population their guarantee holds for.
        """
        tops = ranked(probs, self.labels, max(1, min(top_k, len(self.labels))))
        if rows is None:
            rows = [{"predictions": top} for top in tops]
        else:
            for row, top in zip(rows, tops):
                row["predictions"] = top
        if min_confidence is not None:
            if not 0.0 <= min_confidence <= 1.0:
                raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
            for row, confident in zip(rows, (probs.max(dim=1).values >= min_confidence).tolist()):
                row["uncertain"] = not confident
        if unknown_scores is not None:
            threshold = self.unknown.threshold(false_alarm)
            scores = unknown_scores.double()
            # The flag reads the score itself; the rounded one is for showing.
            flagged, shown = (scores > threshold).tolist(), scores.mul(1e4).round().div(1e4).tolist()
            for row, flag, score in zip(rows, flagged, shown):
                row["unknown_language"] = flag
                row["unknown_score"] = score
        if coverage is not None:
            sets = prediction_sets(probs if set_probs is None else set_probs, self.coverage_threshold(coverage))
            for row, members in zip(rows, sets):
                row["coverage_set"] = [self.labels[j] for j in members]
        return rows

    def unknown_scores(self, normalized: Sequence[str]) -> torch.Tensor | None:
        """How unlike the training languages each name is (None for a run without a scorer)."""
        return None if self.unknown is None else self.unknown.scorer.score(normalized)

    def predict(
        self,
        names: Sequence[str],
        top_k: int = 3,
        *,
        min_confidence: float | None = None,
        coverage: float | None = None,
        max_length: int | None = None,
        prior: str | Path | torch.Tensor = TRAIN_PRIOR,
        false_alarm: float = DEFAULT_FALSE_ALARM,
    ) -> list[dict]:
        """One row per name, in order (see :func:`prepare` for ``max_length``).

        ``prior`` re-weights the probabilities to a population's make-up: ``"train"``,
        ``"uniform"``, ``"estimate"`` (EM over these names), a JSON/CSV file of shares or
        a tensor (priors.py). Rows carry ``unknown_language``/``unknown_score`` when the
        run has an unknown-language scorer.
        """
        results, usable, normalized = prepare(names, max_length)
        if usable:
            probs = self.probabilities(normalized)
            shifted = self.with_prior(probs, self.target_prior(prior, probs))
            self.describe(
                shifted,
                top_k,
                min_confidence=min_confidence,
                coverage=coverage,
                unknown_scores=self.unknown_scores(normalized),
                false_alarm=false_alarm,
                set_probs=probs,
                rows=[results[i] for i in usable],
            )
        return results


def prepare(names: Sequence[str], max_length: int | None = None) -> tuple[list[dict], list[int], list[str]]:
    """Normalize names for prediction: the result rows, which of them to classify, and what the models read.

    Returns one row per name, in order: ``{"name", "normalized"}`` for a usable name,
    ``{"name", "error"}`` for one without letters (or, with ``max_length``, whose normalized
    form is longer than that: transliteration can turn one character into dozens); then
    the indices of the usable rows and their normalized forms.
    """
    results: list[dict] = []
    usable: list[int] = []
    normalized: list[str] = []
    # Tables repeat names: each distinct one is normalized once (its text, or its error).
    seen: dict[str, str | UnusableName] = {}
    for i, name in enumerate(names):
        text = seen.get(name)
        if text is None:
            try:
                text = normalize(name)
            except UnusableName as err:
                text = err
            seen[name] = text
        if isinstance(text, UnusableName):
            results.append({"name": name, "error": str(text)})
            continue
        if max_length is not None and len(text) > max_length:
            results.append(
                {
                    "name": name,
                    "error": f"{name[:20]!r}{'...' if len(name) > 20 else ''} becomes {len(text)} characters once "
                    f"transliterated; a name may have at most {max_length}: send a shorter name",
                }
            )
            continue
        results.append({"name": name, "normalized": text})
        usable.append(i)
        normalized.append(text)
    return results, usable, normalized


class ModelSummary:
    """Stands for ``Predictor.model`` where no single torch module predicts: its parameter count."""

    def __init__(self, parameters: int):
        self.parameters = int(parameters)

    def num_parameters(self) -> int:
        return self.parameters

    def eval(self) -> "ModelSummary":
        return self
