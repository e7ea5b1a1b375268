"""The language make-up of the names a user classifies: re-weighting probabilities to a prior.

A model trained on the names folder learns its class shares (about 52 % Russian, 20 %
English) and hands them to every user: calibrated probabilities are ``p(y|x)`` under the
*training* prior ``pi``. Under label shift (the names of each language look the same, only
their shares differ) the probabilities for a population whose shares are ``pi'`` are

    p'(y|x) = p(y|x) pi'(y) / pi(y)  /  sum_k p(k|x) pi'(k) / pi(k)

(Saerens, Latinne & Decaestecker 2002). Typical use::

    target = resolve_prior("uniform", labels, train_prior)            # or "train", "estimate", a file
    target = resolve_prior("estimate", labels, train_prior, probs)    # EM on the names being classified
    target = read_prior("shares.json", labels)                        # {"Russian": 0.3, ...}
    probs = reweight(probs, train_prior, target)

Which prior to choose. ``train`` keeps the names folder's shares (right for names drawn
like it); for a table or a batch of a few hundred names or more from one population of
unknown make-up, ``estimate`` fits its shares by EM (:func:`estimate_prior`) and is the
recommendation (:data:`RECOMMENDED_PRIOR`; ``namelab compare --suite realworld`` measures
every choice); for single names of unknown origin, ``uniform`` (every language alike); a
file gives known shares.

What a changed prior does to the other answers:

* ``uncertain`` (top probability below ``min_confidence``) reads the re-weighted top
  probability: the flag follows the prior the user chose. The temperature stays the one
  fitted on validation, and the re-weighted probabilities are calibrated only as far as
  label shift holds and ``pi'`` is right.
* ``coverage_set``: split-conformal sets calibrated on the validation split keep their
  guarantee only for names drawn with the training prior (the guarantee rests on
  exchangeability with the validation names). Under label shift to a known ``pi'``, the
  guarantee is restored by weighting each validation name by ``pi'(y_i) / pi(y_i)``
  (weighted conformal prediction, Tibshirani et al. 2019; for label shift, Podkopaev &
  Ramdas 2021): :func:`weighted_conformal_threshold`, on scores computed from the
  validation probabilities re-weighted to ``pi'``. This needs the validation names'
  probabilities and labels, not only their sorted scores; with an *estimated* prior the
  guarantee is only approximate.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

KEYWORDS = ("train", "uniform", "estimate")


TRAIN_PRIOR = "train"
ESTIMATE_PRIOR = "estimate"
PRIORS = (TRAIN_PRIOR, "uniform", ESTIMATE_PRIOR)  # or a file of shares
# For a batch or table of names from one population of unknown make-up: on the real-world
# benchmark it beat uniform for the two most accurate models (accuracy and macro-F1, 3 seeds).
# A single name, or a few, has no batch to estimate from: uniform is the choice there.
RECOMMENDED_PRIOR = ESTIMATE_PRIOR


def class_shares(targets: Sequence[int], num_classes: int) -> list[float]:
    """Each class's share of ``targets`` (class indices): the training prior a run records."""
    counts = torch.bincount(torch.as_tensor(list(targets), dtype=torch.long), minlength=num_classes).double()
    if counts.sum() == 0:
        raise ValueError("no examples to count class shares from")
    return (counts / counts.sum()).tolist()


def _as_prior(prior: torch.Tensor | Sequence[float], num_classes: int, what: str) -> torch.Tensor:
    prior = torch.as_tensor(prior, dtype=torch.float64).flatten()
    if prior.numel() != num_classes:
        raise ValueError(f"the {what} has {prior.numel()} shares but the probabilities have {num_classes} classes")
    if not torch.isfinite(prior).all() or (prior < 0).any():
        raise ValueError(f"the {what} must hold finite shares of 0 or more, got {prior.tolist()}")
    total = float(prior.sum())
    if total <= 0:
        raise ValueError(f"the {what} is all zero; give at least one language a positive share")
    return prior / total


def reweight(
    probs: torch.Tensor, train_prior: torch.Tensor | Sequence[float], target_prior: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """``probs`` ``(N, C)`` under ``train_prior`` moved to ``target_prior``: ``p(y|x) pi'(y)/pi(y)``, rows summing to 1.

    Both priors are normalized first. A class the training prior gives no share keeps
    probability 0 (its ratio is undefined, and the model never learned it). A row whose
    every re-weighted probability is 0 (all its mass on classes the target excludes, or
    underflow) becomes the target prior: the name then tells nothing the prior does not.
    The result has the dtype of ``probs``.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, C), got shape {tuple(probs.shape)}")
    num_classes = probs.shape[1]
    train = _as_prior(train_prior, num_classes, "training prior")
    target = _as_prior(target_prior, num_classes, "target prior")
    ratio = torch.where(train > 0, target / train.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(train))
    weighted = probs.double() * ratio
    total = weighted.sum(dim=1, keepdim=True)
    out = torch.where(
        total > 0, weighted / total.clamp(min=torch.finfo(torch.float64).tiny), target.expand_as(weighted)
    )
    return out.to(probs.dtype)


def estimate_prior(
    probs: torch.Tensor,
    train_prior: torch.Tensor | Sequence[float],
    *,
    counts: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tuple[torch.Tensor, int]:
    """The class prior of the population ``probs`` were computed on, by EM (Saerens et al. 2002).

    ``probs`` ``(N, C)`` are the model's calibrated probabilities under ``train_prior``.
    Each iteration re-weights them to the current estimate (E step) and takes the mean of
    the re-weighted rows as the next estimate (M step), starting from the training prior;
    it stops when no share moves by more than ``tol``. ``counts`` ``(N,)``: how many names
    each row stands for (a table's distinct names, each scored once). Returns ``(prior, iterations)``
    (float64). The estimate is the maximum-likelihood prior only as far as the
    probabilities are calibrated; on a few dozen names it is noisy.
    """
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"estimating a prior needs probabilities (N, C) of at least one name, got {tuple(probs.shape)}"
        )
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"tol must be positive and max_iter at least 1, got tol={tol}, max_iter={max_iter}")
    probs = probs.double()
    train = _as_prior(train_prior, probs.shape[1], "training prior")
    prior = train.clone()
    share = None if counts is None else (counts.double() / counts.double().sum()).unsqueeze(1)  # (N, 1)
    for iteration in range(1, max_iter + 1):
        shifted = reweight(probs, train, prior)
        updated = shifted.mean(dim=0) if share is None else (shifted * share).sum(dim=0)
        change = float((updated - prior).abs().max())
        prior = updated
        if change <= tol:
            return prior, iteration
    return prior, max_iter


def read_prior(path: Path | str, labels: Sequence[str]) -> torch.Tensor:
    """The language shares in a JSON (``{"Russian": 0.3, ...}``) or CSV (``language,share``) file, normalized.

    Every language of ``labels`` must be given a share (0 is allowed and removes the
    language from the answers): a language left out is an error, because silently giving
    it 0 would make it impossible, and a guessed floor would be a prior nobody chose.
    Shares need not sum to 1 (counts work too); they are divided by their sum. Unknown
    languages, negative or non-numeric shares, NaN and an all-zero file are errors.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"prior file {path} does not exist; give 'train', 'uniform', 'estimate' or a JSON/CSV file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not valid JSON ({err}); write it as {{"Russian": 0.3, ...}}') from err
        if not isinstance(data, dict):
            raise ValueError(f'{path} must hold one JSON object of language shares, e.g. {{"Russian": 0.3, ...}}')
        items = list(data.items())
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
        if rows and rows[0] and rows[0][0].strip().lower() in ("language", "label", "class"):
            rows = rows[1:]  # a header line
        bad = [row for row in rows if len(row) != 2]
        if bad:
            raise ValueError(f"{path}: every line must be 'language,share'; this one is not: {bad[0]}")
        items = [(language.strip(), share.strip()) for language, share in rows]
    else:
        raise ValueError(f"{path}: a prior file must end in .json or .csv (language,share lines)")
    shares: dict[str, float] = {}
    for language, share in items:
        if language in shares:
            raise ValueError(f"{path} gives {language!r} twice; give each language one share")
        try:
            value = float(share)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: the share of {language!r} is {share!r}, not a number") from None
        if isinstance(share, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"{path}: the share of {language!r} is {share!r}; shares must be finite numbers of 0 or more"
            )
        shares[language] = value
    unknown = [language for language in shares if language not in labels]
    if unknown:
        raise ValueError(
            f"{path} names language(s) the model does not know: {', '.join(map(repr, unknown))}; "
            f"the model's languages are {', '.join(labels)}"
        )
    missing = [language for language in labels if language not in shares]
    if missing:
        raise ValueError(
            f"{path} gives no share to {', '.join(missing)}; give every language a share (0 to exclude one)"
        )
    prior = torch.tensor([shares[language] for language in labels], dtype=torch.float64)
    if float(prior.sum()) <= 0:
        raise ValueError(f"{path} gives every language a share of 0; at least one must be positive")
    return prior / prior.sum()


def resolve_prior(
    spec: str,
    labels: Sequence[str],
    train_prior: torch.Tensor | Sequence[float],
    probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The target prior ``(C,)`` (float64, sums to 1) that ``spec`` names.

    ``train``: the training shares; ``uniform``: every language alike; ``estimate``: EM
    on ``probs`` (the probabilities of the names being classified, under the training
    prior); anything else: a JSON or CSV file read by :func:`read_prior`.
    """
    train = _as_prior(train_prior, len(labels), "training prior")
    if spec == "train":
        return train
    if spec == "uniform":
        return torch.full((len(labels),), 1.0 / len(labels), dtype=torch.float64)
    if spec == "estimate":
        if probs is None:
            raise ValueError("the 'estimate' prior is fitted on the names being classified; pass their probabilities")
        return estimate_prior(probs, train)[0]
    return read_prior(spec, labels)


def weighted_conformal_threshold(
    scores: torch.Tensor | Sequence[float],
    labels_idx: torch.Tensor | Sequence[int],
    weights: torch.Tensor | Sequence[float],
    coverage: float,
) -> float:
    """The conformal threshold of validation ``scores`` under label shift (Podkopaev & Ramdas 2021).

    ``weights`` ``(C,)`` is ``pi'(y) / pi(y)`` per class; validation name ``i`` counts
    ``weights[labels_idx[i]]``. The threshold is the smallest score ``s`` whose weighted
    share of validation names with a score of at most ``s`` reaches ``coverage``, the
    unseen test name counting with the largest class weight (its label is unknown; this
    is the conservative choice). Returns 1.0 (every class joins the set: the largest
    score the sets of calibrate.py use) when the validation names cannot reach it. With
    all weights equal it is the split-conformal ``ceil((n + 1) coverage)``-th score.
    """
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"the coverage level must be between 0 and 1 (exclusive), got {coverage}")
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    labels_idx = torch.as_tensor(labels_idx, dtype=torch.int64).flatten()
    weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if scores.numel() == 0 or scores.numel() != labels_idx.numel():
        raise ValueError(
            f"need one label per score and at least one score; got {scores.numel()} and {labels_idx.numel()}"
        )
    if not torch.isfinite(weights).all() or (weights < 0).any() or float(weights.max()) <= 0:
        raise ValueError("weights must be finite, 0 or more, and not all 0")
    order = scores.argsort()
    per_name = weights[labels_idx][order]
    cumulative = per_name.cumsum(dim=0) / (per_name.sum() + weights.max())
    reached = (cumulative >= coverage - 1e-12).nonzero()
    return 1.0 if reached.numel() == 0 else float(scores[order][reached[0, 0]])
