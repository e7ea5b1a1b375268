"""Which runs to serve: run folders, or a compare folder's best run of each cell.

    models = load_served_models(["out/compare", "runs/extra-lstm"])
    [m.name for m in models]   # ["rnn", "lstm", "gru", "extra-lstm"]
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..core.cells import CELLS
from ..inference.base import Predictor
from ..inference.load import load_predictor
from ..runs.checkpoint import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    METRICS,
    CheckpointError,
    read_history,
    read_json,
    read_metrics,
    run_state,
    unfinished_message,
)
from ..runs.config import cell_or_kind

_log = logging.getLogger(__name__)


def _run_cell(run_dir: Path) -> str:
    meta = read_json(run_dir / CONFIG)
    try:
        return cell_or_kind(meta)
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{run_dir / CONFIG} names no cell (config.cell); the run folder is damaged") from None


def best_val_accuracy(run_dir: Path) -> float:
    """The best validation accuracy in a run's ``history.json`` (the epoch whose weights were kept)."""
    # val_accuracy only: the n-gram baseline and ensembles record no losses
    return max(float(row["val_accuracy"]) for row in read_history(run_dir, fields=("val_accuracy",)))


def is_unfinished(run_dir: Path) -> bool:
    """A run folder of any kind without its manifest: training was stopped, or is still running."""
    return run_state(run_dir) != "complete"


def find_runs(path: Path | str) -> list[Path]:
    """The run folders one ``RUN_DIR`` argument stands for.

    A folder with ``config.json`` is one run. A folder without one whose subfolders (one
    or two levels down) hold runs is a compare output: its runs are grouped by cell and
    the one with the best *validation* accuracy of each cell is kept (choosing by test
    accuracy would tune on the test split). Unfinished runs in a compare output are skipped
    with a logged warning that says how to resume them; an unfinished run folder given
    itself, a compare output with no finished run, or anything else raises
    :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise CheckpointError(
            f"{path} {what}; give a run folder (written by `namelab train`) or a compare output folder"
        )
    if (path / CONFIG).is_file() or (path / CHECKPOINT).is_file():
        if is_unfinished(path):
            raise CheckpointError(unfinished_message(path))
        return [path]
    # A run being trained has a checkpoint and perhaps no config.json yet: found, to say why it is skipped.
    found = sorted(
        {p.parent for pattern in (CONFIG, CHECKPOINT) for p in [*path.glob(f"*/{pattern}"), *path.glob(f"*/*/{pattern}")]}
    )
    if not found:
        raise CheckpointError(
            f"{path} is neither a run folder (it has no {CONFIG}) nor a compare output folder "
            f"(no run folder in its subfolders, two levels down); give a folder written by `namelab train` "
            f"or `namelab compare`"
        )
    candidates = []
    for run_dir in found:
        if is_unfinished(run_dir):
            # One run still training (or killed) must not keep the finished ones from being served.
            _log.warning("not serving an unfinished run: %s", unfinished_message(run_dir))
        else:
            candidates.append(run_dir)
    if not candidates:
        raise CheckpointError(
            f"{path} holds no finished run: " + "; ".join(unfinished_message(run_dir) for run_dir in found)
        )
    by_cell: dict[str, list[Path]] = {}
    for run_dir in candidates:
        by_cell.setdefault(_run_cell(run_dir), []).append(run_dir)
    order = sorted(by_cell, key=lambda cell: (list(CELLS).index(cell) if cell in CELLS else len(CELLS), cell))
    # max() keeps the first of equals, and candidates are sorted: ties go to the first folder by name.
    return [max(by_cell[cell], key=best_val_accuracy) for cell in order]


@dataclass
class ServedModel:
    """One run behind the API: its public name, its predictor and the figures the page shows."""

    name: str
    run_dir: Path
    predictor: Predictor
    test_metrics: dict | None  # accuracy, macro_f1, n from metrics.json; None when the file is absent
    best_val_accuracy: float | None
    prior: torch.Tensor | None = None  # the population's shares when the server reads them from a file

    @property
    def cell(self) -> str:
        return cell_or_kind(self.predictor.meta)

    def info(self) -> dict:
        meta = self.predictor.meta
        return {
            "name": self.name,
            "cell": self.cell,
            "run": self.run_dir.name,
            "hidden_size": meta["config"].get("hidden_size"),
            "parameters": meta["parameters"] if "parameters" in meta else self.predictor.model.num_parameters(),
            "labels": list(self.predictor.labels),
            "best_epoch": meta.get("best_epoch"),
            "best_val_accuracy": self.best_val_accuracy,
            "test": self.test_metrics,
            "coverage": self.has_coverage,
        }

    @property
    def has_coverage(self) -> bool:
        try:
            self.predictor.coverage_threshold(0.9)
        except ValueError:
            return False
        return True


def lead_model(models: Sequence[ServedModel]) -> ServedModel:
    """The model to lead with: the best validation accuracy (a run without history counts as the worst),
    the first served of equals. Validation, not test: choosing by test accuracy would tune on the test split."""
    return max(models, key=lambda m: -1.0 if m.best_val_accuracy is None else m.best_val_accuracy)


def _unique_names(run_dirs: Sequence[Path], cells: Sequence[str]) -> list[str]:
    """The cell name; for runs sharing a cell, the folder name (with its parent's if that is shared too)."""
    cell_counts = Counter(cells)
    folder_counts = Counter(run_dir.name for run_dir in run_dirs)
    names = [
        cell if cell_counts[cell] == 1
        else run_dir.name if folder_counts[run_dir.name] == 1
        else f"{run_dir.parent.name}/{run_dir.name}"
        for run_dir, cell in zip(run_dirs, cells)
    ]
    seen: Counter[str] = Counter()
    unique = []
    for name in names:  # still equal (same parent and folder names): number them
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def load_served_models(paths: Sequence[Path | str]) -> list[ServedModel]:
    """Load every run that ``paths`` stand for (see :func:`find_runs`), in the order given.

    Each model is served with the engine it was trained with: on batches of a few hundred
    names the hand-written cells cost no more CPU than torch's fused layer (measured with
    bench/load.py), since their input projection is a row lookup.
    """
    if not paths:
        raise ValueError("give at least one run folder to serve")
    run_dirs: list[Path] = []
    for path in paths:
        for run_dir in find_runs(path):
            if run_dir.resolve() not in {r.resolve() for r in run_dirs}:
                run_dirs.append(run_dir)
    predictors = [load_predictor(run_dir) for run_dir in run_dirs]
    cells = [cell_or_kind(p.meta) for p in predictors]
    models = []
    for name, run_dir, predictor in zip(_unique_names(run_dirs, cells), run_dirs, predictors):
        test = None
        if (run_dir / METRICS).is_file():
            metrics = read_metrics(run_dir)
            test = {key: metrics[key] for key in ("accuracy", "macro_f1", "n")}
        best_val = best_val_accuracy(run_dir) if (run_dir / HISTORY).is_file() else None
        models.append(ServedModel(name, run_dir, predictor, test, best_val))
    return models
