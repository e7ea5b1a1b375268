"""Tests for namelab.core.metrics, against scikit-learn.

    .venv/bin/python -m pytest tests/test_metrics.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from namelab.core.metrics import classification_metrics


@pytest.mark.parametrize("seed", range(4))
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 6
    targets = rng.integers(0, num_classes, size=300)
    # Mostly right, so the scores are not all alike; on odd seeds the last class, present
    # in the targets, is never predicted (its rows are answered as class 0).
    predictions = np.where(rng.random(300) < 0.6, targets, rng.integers(0, num_classes, size=300))
    if seed % 2:
        predictions[predictions == num_classes - 1] = 0
        assert num_classes - 1 in targets and num_classes - 1 not in predictions
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


def test_a_class_present_but_never_predicted_scores_zero() -> None:
    # Class c occurs twice and is never predicted: no prediction of it was right, so its
    # precision is 0 (scikit-learn's zero_division=0), not a perfect score, and its F1 of 0
    # counts in macro-F1 because the class is present.
    targets, predictions = [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 0, 1]
    metrics = classification_metrics(targets, predictions, ["a", "b", "c"])
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    precision, _, _, _ = precision_recall_fscore_support(targets, predictions, labels=range(3), zero_division=0)
    assert [metrics["per_class"][label]["precision"] for label in "abc"] == pytest.approx(precision.tolist())
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.8 + 0.0) / 3)
