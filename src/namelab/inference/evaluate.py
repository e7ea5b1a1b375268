"""Recompute a run's test metrics from its run folder and the dataset.

    metrics, warning = evaluate_run("runs/lstm", data_dir=None)

Any run folder (a recurrent model, the n-gram baseline, an ensemble) goes through
:class:`~namelab.inference.base.Predictor`; a calibrated run also gets its calibration
figures on the test split, as ``metrics.json`` holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..core.metrics import classification_metrics
from ..data.corpus import Corpus, Example
from ..data.download import dataset_checksum, resolve_data_dir
from ..runs.config import resolve_device
from .base import Predictor
from .calibrate import COVERAGE_LEVEL, calibration_metrics
from .load import load_predictor
from .priors import TRAIN_PRIOR


def evaluate_examples(predictor: Predictor, examples: Sequence[Example], labels: Sequence[str]) -> dict:
    """The classification metrics of ``predictor``'s top languages on labelled ``examples`` (a held-out split).

    The one place a training driver reads the test split's names for its final figures
    (tests/helpers.py's test-split guard lets only this and calibration's scoring read them).
    """
    predicted = predictor.scores([e.name for e in examples]).argmax(dim=1).tolist()
    return classification_metrics([e.label for e in examples], predicted, list(labels))


def evaluate_run(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    device: str = "auto",
    *,
    name_column: str = "name",
    label_column: str = "language",
    prior: str = TRAIN_PRIOR,
) -> tuple[dict, str | None]:
    """Test-split metrics of a run, and a warning when the dataset differs from the one it was trained on.

    ``data_dir`` is a names folder or a table (then read with ``name_column`` and ``label_column``).
    ``prior``: the answers re-weighted to another population (priors.py) before they are
    scored; the calibration figures always describe the run's own (training) prior.
    """
    torch_device = resolve_device(device)
    predictor = load_predictor(run_dir, device=torch_device)
    meta = predictor.meta
    folder = Path(data_dir) if data_dir is not None and Path(data_dir).is_file() else resolve_data_dir(data_dir)
    corpus = Corpus.load(folder, name_column=name_column, label_column=label_column)
    if corpus.labels != meta["labels"]:
        raise ValueError(
            f"the dataset at {folder} has languages {corpus.labels}, the run was trained on {meta['labels']}; "
            "pass the --data-dir it was trained with"
        )
    warning = None
    if meta.get("dataset_sha256") and meta["dataset_sha256"] != dataset_checksum(folder):
        warning = f"the dataset at {folder} differs from the one {run_dir} was trained on; the test split may differ"
    split = corpus.split(seed=meta["config"]["split_seed"])
    scores = predictor.scores([e.name for e in split.test])
    targets = [e.label for e in split.test]
    probs = torch.softmax(scores.double() / predictor.temperature, dim=1)
    target = predictor.target_prior(prior, probs)
    answers = predictor.with_prior(probs, target).argmax(dim=1)
    metrics = classification_metrics(targets, answers.tolist(), corpus.labels)
    if target is not None:  # the training prior's figures are metrics.json's, key for key
        metrics["prior"] = str(prior)
        metrics["prior_shares"] = dict(zip(corpus.labels, (round(float(s), 6) for s in target)))
    calibration = meta.get("calibration")
    if calibration and calibration.get("conformal_scores"):
        metrics.update(calibration_metrics(scores, torch.tensor(targets), calibration, COVERAGE_LEVEL))
    return metrics, warning
