"""Probabilities a user can trust: temperature scaling, calibration error, conformal sets.

Fitted on the validation split, stored in the run's ``config.json`` under
``"calibration"``, applied by :class:`namelab.inference.base.Predictor`::

    temperature = fit_temperature(val_logits, val_targets)
    probs = torch.softmax(test_logits / temperature, dim=1)
    expected_calibration_error(probs, test_targets)            # 15 equal-width bins
    scores = conformal_scores(torch.softmax(val_logits / temperature, 1), val_targets)
    sets = prediction_sets(probs, conformal_threshold(scores, level=0.9))

A *temperature* divides the logits before the softmax: one number, fitted by minimizing
the validation negative log-likelihood, that makes an over-confident model less sure
(T > 1) without changing its ranking of the languages.

The *conformal sets* are split-conformal sets of the adaptive kind (APS without its
random tie-breaking): a name's languages are taken best first, each one joining the set
while the languages ranked above it hold at most a threshold of the probability. The
threshold is chosen on the validation split so that, on names drawn like the validation
names, the set holds the true language at least ``level`` of the time; the top language
is always in it. (Counting the true language's own probability into its score, the other
common form, covered 99 % of names when asked for 95 % on a synthetic task: too wide.)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` minimizing the mean NLL of ``softmax(logits / T)``.

    ``logits`` may equally be log-probabilities: ``log_softmax`` differs from the logits by
    a per-row constant, which the softmax ignores.
    """
    logits = logits.detach().double().cpu()
    targets = targets.detach().long().cpu()
    if logits.shape[0] == 0:
        raise ValueError("cannot fit a temperature on an empty validation split")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        raise ValueError("temperature fitting diverged; the validation logits are not finite")
    return temperature


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE of the top-1 confidence: ``sum_b |B|/N * |accuracy(B) - confidence(B)|`` over equal-width bins."""
    probs = probs.detach().double().cpu()
    targets = targets.detach().long().cpu()
    if probs.shape[0] == 0:
        return 0.0
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).double()
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 joins the first bin.
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, confidence)
    correct_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, correct)
    return float((conf_sum - correct_sum).abs().sum() / probs.shape[0])


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, count, mean confidence and accuracy (for a reliability diagram)."""
    probs = probs.detach().double().cpu()
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets.detach().long().cpu()).double()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": count,
                "confidence": float(confidence[members].mean()) if count else None,
                "accuracy": float(correct[members].mean()) if count else None,
            }
        )
    return rows


def _mass_above(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, classes best first and the probability of the classes ranked above each: ``(N, C)`` twice."""
    sorted_probs, order = probs.detach().double().cpu().sort(dim=1, descending=True)
    return sorted_probs.cumsum(dim=1) - sorted_probs, order


def conformal_scores(probs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """The calibration scores, sorted: the probability of the languages ranked above the true one."""
    above, order = _mass_above(probs)
    rank = (order == targets.detach().long().cpu()[:, None]).long().argmax(dim=1)
    return np.sort(above.gather(1, rank[:, None]).squeeze(1).clamp(0.0, 1.0).numpy())


def conformal_threshold(scores: Sequence[float], level: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) level)``-th smallest score (1.0 past the last)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"the coverage level must be between 0 and 1 (exclusive), got {level}")
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("no calibration scores; the run was not calibrated")
    rank = math.ceil((scores.size + 1) * level)
    return 1.0 if rank > scores.size else float(scores[rank - 1])


def prediction_sets(probs: torch.Tensor, threshold: float) -> list[list[int]]:
    """Per row, the top-ranked classes whose higher-ranked classes hold at most ``threshold`` (never empty)."""
    above, order = _mass_above(probs)
    # The tolerance keeps a mass equal to the threshold up to float32 rounding inside the set.
    sizes = (above <= threshold + 1e-6).sum(dim=1).clamp(min=1)
    return [row[:size] for row, size in zip(order.tolist(), sizes.tolist())]


def coverage_report(probs: torch.Tensor, targets: torch.Tensor, threshold: float, level: float) -> dict:
    """Empirical coverage and mean set size of :func:`prediction_sets` on a labelled split."""
    sets = prediction_sets(probs, threshold)
    hits = [int(t) in s for s, t in zip(sets, targets.tolist())]
    return {
        "level": level,
        "threshold": threshold,
        "coverage": float(np.mean(hits)) if hits else 0.0,
        "mean_set_size": float(np.mean([len(s) for s in sets])) if sets else 0.0,
    }


COVERAGE_LEVEL = 0.9  # the level metrics.json reports coverage at
# Below this many validation names a fitted temperature follows a handful of names (all
# of them right drives it to zero), so the run keeps T = 1; the conformal scores are
# still valid, only coarse.
MIN_TEMPERATURE_NAMES = 200


def calibrate_scores(
    val_scores: torch.Tensor,
    val_targets: torch.Tensor,
    test_scores: torch.Tensor,
    test_targets: torch.Tensor,
    level: float = COVERAGE_LEVEL,
) -> tuple[dict, dict]:
    """Fit on validation, measure on test: ``(config calibration, metrics additions)``.

    ``*_scores`` are uncalibrated logits or log-probabilities ``(N, C)``. The first dict
    goes to ``config.json`` under ``"calibration"`` (what :class:`~namelab.inference.base.Predictor`
    applies); the second joins ``metrics.json``: the test ECE before and after, and the
    test coverage and mean set size of the ``level`` conformal sets.
    """
    fitted = val_scores.shape[0] >= MIN_TEMPERATURE_NAMES
    temperature = fit_temperature(val_scores, val_targets) if fitted else 1.0
    val_probs = torch.softmax(val_scores.double() / temperature, dim=1)
    calibration = {
        "temperature": temperature,
        "temperature_fitted": fitted,
        "ece_val_before": expected_calibration_error(torch.softmax(val_scores.double(), dim=1), val_targets),
        "ece_val": expected_calibration_error(val_probs, val_targets),
        "conformal_scores": conformal_scores(val_probs, val_targets).tolist(),
    }
    return calibration, calibration_metrics(test_scores, test_targets, calibration, level)


def calibration_metrics(scores: torch.Tensor, targets: torch.Tensor, calibration: dict, level: float) -> dict:
    """The metrics.json calibration fields of uncalibrated ``scores`` under a stored ``calibration``."""
    temperature = calibration["temperature"]
    before = torch.softmax(scores.double(), dim=1)
    after = torch.softmax(scores.double() / temperature, dim=1)
    coverage = coverage_report(after, targets, conformal_threshold(calibration["conformal_scores"], level), level)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(before, targets),
        "ece_after": expected_calibration_error(after, targets),
        "coverage_level": level,
        "coverage": coverage["coverage"],
        "mean_set_size": coverage["mean_set_size"],
        "reliability_before": reliability_bins(before, targets),
        "reliability": reliability_bins(after, targets),
    }


def calibrate_predictor(predictor, split, level: float = COVERAGE_LEVEL) -> tuple[dict, dict]:
    """:func:`calibrate_scores` of a predictor's uncalibrated scores on ``split.val`` and ``split.test``.

    ``predictor`` is any :class:`~namelab.inference.base.Predictor` (a single model or an ensemble).
    """
    if not split.val:
        raise ValueError("the validation split is empty; calibration needs names the model did not train on")

    def scored(examples):
        scores = predictor.scores([e.name for e in examples])
        return scores, torch.tensor([e.label for e in examples], dtype=torch.long)

    val_scores, val_targets = scored(split.val)
    calibration, metrics = calibrate_scores(val_scores, val_targets, *scored(split.test), level=level)
    calibration["val_accuracy"] = float((val_scores.argmax(dim=1) == val_targets).double().mean())
    return calibration, metrics
