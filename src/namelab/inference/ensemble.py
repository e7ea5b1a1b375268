"""Ensembles: a run folder whose prediction is the average of its members' probabilities.

    write_ensemble("runs/best", ["runs/best/members/gru-seed0", "runs/best/members/ngram"])
    load_predictor("runs/best").predict(["Nakamura"])     # like any run folder

The folder's ``config.json`` says ``"kind": "ensemble"`` and lists its members by
relative path; each member is a normal run folder (a recurrent model or the n-gram
baseline) with its own weights, checksum and temperature. The ensemble averages the
members' *calibrated* probabilities (equally, or with the ``"weights"`` of config.json,
which :func:`fit_weight` chooses on the validation split), then applies its own
temperature (fitted on the validation split like a single model's), so
``--min-confidence`` and ``--coverage`` work on it as on any run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from ..runs.checkpoint import (
    CONFIG,
    CheckpointError,
    check_calibration,
    check_complete,
    read_json,
    run_kind,
    start_writing,
    write_json,
    write_manifest,
)
from ..runs.config import cell_or_kind
from .base import ModelSummary, Predictor
from .ngram import KIND as NGRAM
from .ngram import NgramPredictor
from .unknown import UnknownCheck

KIND = "ensemble"


def write_ensemble(
    folder: Path | str, members: Sequence[Path | str], meta: dict | None = None, *, complete: bool = True
) -> dict:
    """Write ``folder/config.json`` for ``members`` (run folders inside ``folder``), then its manifest; returns it.

    The labels, split seed and dataset checksum are the members' (they must agree).
    ``complete=False`` leaves the folder unfinished, for a writer with more to add
    (train_ensemble: weights, calibration, metrics), which writes the manifest itself.
    """
    folder = Path(folder)
    if not members:
        raise ValueError("an ensemble needs at least one member run folder")
    relative, metas = [], []
    for member in members:
        member = Path(member)
        try:
            relative.append(member.resolve().relative_to(folder.resolve()).as_posix())
        except ValueError:
            raise ValueError(f"member {member} is not inside the ensemble folder {folder}; put it there") from None
        metas.append(read_json(member / CONFIG))
    labels = metas[0]["labels"]
    for member, member_meta in zip(members, metas):
        if member_meta["labels"] != labels:
            raise ValueError(f"member {member} was trained on other languages than {members[0]}; members must agree")
    split_seeds = {m.get("config", {}).get("split_seed") for m in metas}
    config = {
        "hidden_size": max(int(m.get("config", {}).get("hidden_size", 0)) for m in metas),  # the widest member's
        "members": [cell_or_kind(m) for m in metas],
        "split_seed": split_seeds.pop() if len(split_seeds) == 1 else None,
    }
    full = {
        "kind": KIND,
        **(meta or {}),
        "config": {**config, **(meta or {}).get("config", {})},
        "members": relative,
        "labels": labels,
        "dataset_sha256": metas[0].get("dataset_sha256"),
        "parameters": int(sum(m.get("parameters", 0) for m in metas)),
    }
    start_writing(folder)
    write_json(folder / CONFIG, full)
    if complete:
        write_manifest(folder)
    return full


def member_folders(folder: Path | str, meta: dict) -> list[Path]:
    """The member run folders an ensemble's ``config.json`` (``meta``) lists, each checked to lie inside it."""
    folder = Path(folder)
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise CheckpointError(f"{folder / CONFIG} lists no members; the ensemble folder is damaged")
    paths = []
    for member in members:
        path = (folder / member).resolve()
        if folder.resolve() not in path.parents:
            raise CheckpointError(f"member {member!r} of {folder} points outside the folder; refusing to load it")
        paths.append(path)
    return paths


WEIGHT_GRID = tuple(round(0.1 * k, 1) for k in range(1, 10))


def fit_weight(probs: Sequence[torch.Tensor], targets: torch.Tensor, grid: Sequence[float] = WEIGHT_GRID) -> list[float]:
    """Member weights: the last member gets the grid value with the best accuracy, the others share the rest.

    ``probs`` are the members' calibrated validation probabilities; ties go to the value
    nearest an equal share.
    """
    if len(probs) < 2:
        return [1.0] * len(probs)
    rest = sum(probs[:-1]) / (len(probs) - 1)
    equal = 1.0 / len(probs)

    def accuracy(w: float) -> float:
        mixed = (1 - w) * rest + w * probs[-1]
        return float((mixed.argmax(dim=1) == targets).double().mean())

    best = max(grid, key=lambda w: (accuracy(w), -abs(w - equal)))
    return [(1 - best) / (len(probs) - 1)] * (len(probs) - 1) + [best]


def load_member(run_dir: Path | str, device: str | torch.device = "cpu", backend: str = "torch") -> Predictor:
    """A member's predictor: a recurrent model or the n-gram baseline (an ensemble holds no ensembles)."""
    if run_kind(run_dir) == NGRAM:
        return NgramPredictor.from_folder(run_dir)
    if run_kind(run_dir) == KIND:
        raise CheckpointError(f"{run_dir} is an ensemble inside an ensemble; members are single runs, rebuild it")
    return Predictor.from_folder(run_dir, device=device, backend=backend)


class EnsemblePredictor(Predictor):
    """Averages its member predictors' calibrated probabilities."""

    def __init__(self, members: Sequence[Predictor], meta: dict, unknown: UnknownCheck | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.labels = list(self.members[0].labels)
        for member in self.members[1:]:
            if list(member.labels) != self.labels:
                raise CheckpointError("the ensemble's members predict different languages; rebuild the ensemble")
        self.model = ModelSummary(sum(member.model.num_parameters() for member in self.members))
        self.vocab = None
        self.meta = meta
        self.device = self.members[0].device
        self.unknown = unknown
        weights = meta.get("weights") or [1.0 / len(self.members)] * len(self.members)
        numbers = isinstance(weights, list) and all(
            not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights
        )
        if not numbers or len(weights) != len(self.members) or not sum(weights) > 0:
            raise CheckpointError(
                f"the ensemble's weights {weights} do not fit its {len(self.members)} members; rebuild the ensemble"
            )
        self.weights = [float(w) / sum(weights) for w in weights]

    @classmethod
    def from_folder(
        cls, folder: Path | str, device: str | torch.device = "cpu", backend: str = "torch"
    ) -> "EnsemblePredictor":
        check_complete(Path(folder), required=(CONFIG,))  # no weights of its own; each member checks its own
        meta = read_json(Path(folder) / CONFIG)
        if not isinstance(meta, dict):
            raise CheckpointError(f"{Path(folder) / CONFIG} holds no JSON object; the ensemble folder is damaged")
        check_calibration(meta, Path(folder) / CONFIG)
        return cls.from_meta(folder, meta, device, backend)

    @classmethod
    def from_meta(
        cls, folder: Path | str, meta: dict, device: str | torch.device = "cpu", backend: str = "torch"
    ) -> "EnsemblePredictor":
        """The ensemble ``meta`` describes, its members read from ``folder`` (for its writer, before the manifest)."""
        members = [load_member(path, device, backend) for path in member_folders(folder, meta)]
        return cls(members, meta, UnknownCheck.load(folder))

    @torch.inference_mode()
    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """Log of the weighted mean of the members' calibrated probabilities ``(N, C)``."""
        mean = sum(w * m.probabilities(normalized, batch_size) for w, m in zip(self.weights, self.members))
        return mean.clamp_min(1e-12).log()
