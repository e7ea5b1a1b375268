"""One reader for every kind of run folder: ``load_predictor(run_dir)``.

    predictor = load_predictor("runs/lstm")          # a recurrent model
    predictor = load_predictor("runs/best")          # an ensemble (--preset best)
    predictor.predict(["Nakamura", "Nguyen"])

``config.json``'s ``kind`` says which predictor reads the folder; every kind answers
through :class:`~namelab.inference.base.Predictor`'s methods.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..runs.checkpoint import run_kind
from .base import Predictor
from .ensemble import KIND as ENSEMBLE
from .ensemble import EnsemblePredictor, load_member


def load_predictor(run_dir: Path | str, device: str | torch.device = "cpu", backend: str = "torch") -> Predictor:
    """The predictor of any run folder: a recurrent model, the n-gram baseline or an ensemble.

    ``backend`` runs the recurrent models: ``torch``, ``onnx`` (onnxruntime) or ``auto`` (backends.py).
    """
    if run_kind(run_dir) == ENSEMBLE:
        return EnsemblePredictor.from_folder(run_dir, device=device, backend=backend)
    return load_member(run_dir, device, backend)
