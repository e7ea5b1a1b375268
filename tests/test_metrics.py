"""Tests for namelab.metrics, against scikit-learn.

    .venv/bin/python -m pytest tests/test_metrics.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from namelab.metrics import classification_metrics


@pytest.mark.parametrize("seed", range(4))
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 6
    targets = rng.integers(0, num_classes, size=300)
    # Mostly right, a class now and then never predicted, so the scores are not all alike.
    predictions = np.where(rng.random(300) < 0.6, targets, rng.integers(0, num_classes - seed % 2, size=300))
    labels = [f"L{i}" for i in range(num_classes)]
    metrics = classification_metrics(targets.tolist(), predictions.tolist(), labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predictions, labels=range(num_classes), zero_division=0
    )
    for i, label in enumerate(labels):
        row = metrics["per_class"][label]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(targets, predictions))
    assert metrics["confusion"] == sk_confusion_matrix(targets, predictions, labels=range(num_classes)).tolist()


def test_macro_f1_averages_over_classes_present_in_the_split() -> None:
    # Class 2 never occurs in the targets (it is only predicted once, wrongly): it has no
    # recall to average, so macro-F1 is the mean over classes 0 and 1.
    targets, predictions = [0, 0, 1, 1], [0, 2, 1, 1]
    metrics = classification_metrics(targets, predictions, ["a", "b", "c"])
    present = [0, 1]
    expected = f1_score(targets, predictions, labels=present, average="macro", zero_division=0)
    assert metrics["macro_f1"] == pytest.approx(expected)
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
