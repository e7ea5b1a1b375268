"""Temperature scaling, calibration error and conformal sets, on synthetic tasks whose truth is known."""

from __future__ import annotations

import math

import pytest
import torch

from namelab.data.corpus import Vocab
from namelab.inference.base import Predictor
from namelab.inference.calibrate import (
    conformal_scores,
    conformal_threshold,
    coverage_report,
    expected_calibration_error,
    fit_temperature,
    prediction_sets,
    reliability_bins,
)
from namelab.runs.checkpoint import load_run


def synthetic_task(n: int, num_classes: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """True logits and labels drawn from their softmax: ``softmax(logits)`` is perfectly calibrated."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, num_classes, generator=generator, dtype=torch.float64) * 2.0
    labels = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_temperature_recovers_the_overconfidence_factor_and_lowers_ece():
    logits, labels = synthetic_task(20_000)
    overconfident = logits * 3.0  # a model three times too sure of itself
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(torch.softmax(overconfident, 1), labels)
    after = expected_calibration_error(torch.softmax(overconfident / temperature, 1), labels)
    assert before > 0.1
    assert after < 0.02
    assert after < before / 5


def test_temperature_is_the_same_for_logits_and_log_probabilities():
    logits, labels = synthetic_task(2_000, seed=1)
    from_logits = fit_temperature(logits * 2, labels)
    from_log_probs = fit_temperature(torch.log_softmax(logits * 2, dim=1), labels)
    assert from_logits == pytest.approx(from_log_probs, rel=1e-6)


def test_temperature_refuses_an_empty_split():
    with pytest.raises(ValueError, match="empty validation split"):
        fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_ece_by_hand():
    # Two names in the (0.6, 0.667] bin, one right: |0.5 - 0.635| * 2/3; one in (0.867, 0.933], right: |1 - 0.9| / 3.
    probs = torch.tensor([[0.62, 0.38], [0.35, 0.65], [0.9, 0.1]])
    targets = torch.tensor([0, 0, 0])
    expected = abs(0.5 - 0.635) * 2 / 3 + abs(1.0 - 0.9) / 3
    assert expected_calibration_error(probs, targets) == pytest.approx(expected)
    bins = reliability_bins(probs, targets)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 3
    assert [b for b in bins if b["count"] == 2][0]["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_conformal_sets_reach_their_coverage_on_fresh_names(level):
    # Calibrate on one draw, measure on another: split-conformal guarantees >= level on average.
    cal_logits, cal_labels = synthetic_task(3_000, seed=2)
    test_logits, test_labels = synthetic_task(20_000, seed=3)
    scores = conformal_scores(torch.softmax(cal_logits, 1), cal_labels)
    threshold = conformal_threshold(scores, level)
    report = coverage_report(torch.softmax(test_logits, 1), test_labels, threshold, level)
    assert level - 0.015 <= report["coverage"] <= level + 0.015
    assert 1.0 <= report["mean_set_size"] < 6.0


def test_overconfident_sets_undercover_until_calibrated():
    cal_logits, cal_labels = synthetic_task(3_000, seed=4)
    test_logits, test_labels = synthetic_task(20_000, seed=5)
    # The threshold is chosen on the over-confident model's own scores, so conformal still covers...
    scores = conformal_scores(torch.softmax(cal_logits * 3, 1), cal_labels)
    report = coverage_report(torch.softmax(test_logits * 3, 1), test_labels, conformal_threshold(scores, 0.9), 0.9)
    assert report["coverage"] >= 0.885
    # ...whereas trusting its raw probabilities (threshold = level) covers far less.
    naive = coverage_report(torch.softmax(test_logits * 3, 1), test_labels, 0.9, 0.9)
    assert naive["coverage"] < 0.85


def test_prediction_sets_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.05, 0.9, 0.05], [0.34, 0.33, 0.33]])
    # a class joins while the classes above it hold at most the threshold
    assert prediction_sets(probs, 0.6) == [[0, 1], [1], [0, 1]]
    assert prediction_sets(probs, 0.8) == [[0, 1, 2], [1], [0, 1, 2]]
    assert prediction_sets(probs, 0.4) == [[0], [1], [0, 1]]
    assert prediction_sets(probs, 0.0) == [[0], [1], [0]]  # never empty
    assert prediction_sets(probs, 1.0)[0] == [0, 1, 2]


def test_conformal_scores_are_the_mass_above_the_true_class():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    assert conformal_scores(probs, torch.tensor([0, 2])).tolist() == pytest.approx([0.0, 0.8])


def test_conformal_threshold_rank_and_errors():
    scores = [0.1 * k for k in range(1, 11)]  # 10 scores
    assert conformal_threshold(scores, 0.5) == pytest.approx(0.6)  # ceil(11 * 0.5) = 6th smallest
    assert conformal_threshold(scores, 0.95) == 1.0  # ceil(11 * 0.95) = 11 > 10: every class
    with pytest.raises(ValueError, match="between 0 and 1"):
        conformal_threshold(scores, 1.5)
    with pytest.raises(ValueError, match="no calibration scores"):
        conformal_threshold([], 0.9)


def test_predictor_applies_the_stored_temperature_and_flags(tiny_runs):
    model, meta = load_run(tiny_runs["lstm"])
    meta = {**meta, "calibration": None}  # as before training calibrated its runs
    names = ["Aeiou", "Bdkgt", "Lmnrs"]
    plain = Predictor(model, Vocab(meta["vocab"]), meta["labels"], meta)
    cooled = Predictor(
        model,
        Vocab(meta["vocab"]),
        meta["labels"],
        {**meta, "calibration": {"temperature": 4.0, "conformal_scores": [0.5] * 50 + [0.8] * 50}},
    )
    raw = plain.probabilities(names)
    scaled = cooled.probabilities(names)
    assert torch.allclose(scaled, torch.softmax(raw.log() / 4.0, dim=1), atol=1e-5)
    assert (scaled.max(dim=1).values < raw.max(dim=1).values).all()

    threshold = float(scaled.max(dim=1).values.min()) + 1e-3  # at least one name falls below it
    rows = cooled.predict(names, top_k=2, min_confidence=threshold, coverage=0.9)
    assert any(row["uncertain"] for row in rows)
    for row, p in zip(rows, scaled.max(dim=1).values.tolist()):
        assert row["uncertain"] == (p < threshold)
        # threshold 0.8: languages join while those above them hold at most 0.8 of the mass
        ranking = cooled.predict([row["name"]], top_k=3)[0]["predictions"]
        above = [sum(e["probability"] for e in ranking[:k]) for k in range(len(ranking))]
        assert row["coverage_set"] == [e["language"] for e, mass in zip(ranking, above) if mass <= 0.8 + 1e-6]
    assert "uncertain" not in plain.predict(names)[0]

    with pytest.raises(ValueError, match="no conformal calibration"):
        plain.predict(names, coverage=0.9)
    with pytest.raises(ValueError, match="min_confidence"):
        plain.predict(names, min_confidence=1.5)


def test_temperature_one_changes_nothing(tiny_runs):
    model, meta = load_run(tiny_runs["gru"])
    meta = {**meta, "calibration": None}  # as before training calibrated its runs
    names = ["Aeiou", "Bdkgt"]
    plain = Predictor(model, Vocab(meta["vocab"]), meta["labels"], meta)
    explicit = Predictor(model, Vocab(meta["vocab"]), meta["labels"], {**meta, "calibration": {"temperature": 1.0}})
    assert torch.equal(plain.probabilities(names), explicit.probabilities(names))
    assert math.isclose(float(plain.probabilities(names).sum(dim=1)[0]), 1.0, rel_tol=1e-5)


def test_calibrate_scores_fits_on_validation_and_reports_test_ece_and_coverage():
    from namelab.inference.calibrate import calibrate_scores

    logits, labels = synthetic_task(3000, seed=11)
    val, test = slice(0, 1500), slice(1500, 3000)
    overconfident = logits * 3.0
    calibration, metrics = calibrate_scores(overconfident[val], labels[val], overconfident[test], labels[test])
    assert calibration["temperature_fitted"] and calibration["temperature"] == pytest.approx(3.0, rel=0.15)
    assert len(calibration["conformal_scores"]) == 1500
    assert metrics["ece_after"] < 0.03 < metrics["ece_before"]
    assert 0.87 <= metrics["coverage"] <= 0.93 and metrics["coverage_level"] == 0.9
    assert 1.0 <= metrics["mean_set_size"] <= logits.shape[1]
    assert sum(row["count"] for row in metrics["reliability"]) == 1500


def test_the_conformal_scores_are_the_validation_names_not_the_test_names():
    from namelab.inference.calibrate import calibrate_scores

    logits, labels = synthetic_task(900, seed=12)
    val, test = slice(0, 600), slice(600, 900)  # sizes differ: the scores tell which split they came from
    calibration, _ = calibrate_scores(logits[val], labels[val], logits[test] * 3.0, labels[test])
    val_probs = torch.softmax(logits[val] / calibration["temperature"], dim=1)
    assert calibration["conformal_scores"] == pytest.approx(conformal_scores(val_probs, labels[val]).tolist())


class _FixedAnswer:
    """A stand-in predictor that answers class 0 for every name."""

    def scores(self, names):
        return torch.tensor([[5.0, 0.0]] * len(names))


def test_calibrate_predictor_reports_the_validation_accuracy_not_the_test_accuracy():
    from namelab.data.corpus import Example, Split
    from namelab.inference.calibrate import calibrate_predictor

    # Class 0 is right on every validation name and wrong on every test name.
    split = Split([], [Example("ab", 0), Example("ba", 0)], [Example("cd", 1)] * 3)
    calibration, _ = calibrate_predictor(_FixedAnswer(), split)
    assert calibration["val_accuracy"] == 1.0  # what history.json records for an n-gram or ensemble run
    assert len(calibration["conformal_scores"]) == len(split.val)
