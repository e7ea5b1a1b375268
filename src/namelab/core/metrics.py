"""Classification metrics on a split: accuracy, macro-F1, per-class scores, confusion.

    metrics = classification_metrics(targets, predictions, labels)
    metrics["accuracy"], metrics["macro_f1"], metrics["confusion"][true][predicted]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(targets: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def classification_metrics(targets: Sequence[int], predictions: Sequence[int], labels: Sequence[str]) -> dict:
    """The metrics.json object: ``accuracy``, ``macro_f1``, ``per_class``, ``labels``, ``confusion``."""
    matrix = confusion_matrix(targets, predictions, len(labels))
    true_positive = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0  # a class absent from the split has no recall to average
    total = int(matrix.sum())
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": total,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }


def format_metrics(metrics: dict) -> str:
    """A plain-text table of a metrics object, for the terminal."""
    lines = [
        f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   ({metrics['n']} names)",
        f"{'language':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]
    for label, row in metrics["per_class"].items():
        lines.append(
            f"{label:<12} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} {row['support']:>8d}"
        )
    return "\n".join(lines)
