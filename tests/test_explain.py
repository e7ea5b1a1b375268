"""Tests for namelab.inference.explain: occlusion, on the session's tiny runs (conftest.py).

    .venv/bin/python -m pytest tests/test_explain.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from namelab.inference.explain import occlusion_variants, read_occlusion, variant_starts
from namelab.inference.load import load_predictor


def test_variants_follow_each_name_and_starts_point_at_the_names():
    names = ["Abc", "De"]
    variants = occlusion_variants(names)
    assert variants == ["Abc", "?bc", "A?c", "Ab?", "De", "?e", "D?"]
    assert [variants[i] for i in variant_starts(names)] == names


def test_occlusion_of_an_unknown_symbol_is_zero(tiny_runs: dict[str, Path]):
    # Replacing "?" by "?" changes nothing: its drop must be exactly zero, the others need not be.
    predictor = load_predictor(tiny_runs["lstm"])
    probs = predictor.probabilities(occlusion_variants(["Ae?iou"]))
    (explanation,) = read_occlusion(probs, ["Ae?iou"], predictor.labels)
    drops = [c["drop"] for c in explanation["characters"]]
    assert drops[2] == 0.0
    assert any(d != 0.0 for d in drops)


def test_each_drop_is_the_top_languages_loss_without_that_character(tiny_runs: dict[str, Path]):
    predictor = load_predictor(tiny_runs["gru"])
    names = ["Bdkgt", "Lmnrsa"]
    explanations = read_occlusion(predictor.probabilities(occlusion_variants(names)), names, predictor.labels)
    for name, explanation in zip(names, explanations):
        probs = predictor.probabilities([name, name[:1] + "?" + name[2:]])
        top = predictor.labels.index(explanation["language"])
        assert explanation["language"] == predictor.labels[int(probs[0].argmax())]
        assert explanation["characters"][1]["drop"] == pytest.approx(float(probs[0, top] - probs[1, top]), abs=1e-5)
