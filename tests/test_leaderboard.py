"""``namelab compare --suite seed,accuracy``: the suite trains beside the seed experiment and the report shows it.

    .venv/bin/python -m pytest tests/test_leaderboard.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_names_folder, one_thread, separable_names

from namelab.cli.commands import main
from namelab.inference.ensemble import EnsemblePredictor
from namelab.inference.load import load_predictor
from namelab.inference.ngram import NgramPredictor


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory) -> Path:
    data = make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=30))
    out = tmp_path_factory.mktemp("compare") / "report"
    argv = ["compare", "--quick", "--suite", "seed,accuracy", "--data-dir", data, "--out", out, "--hidden-size", "8",
            "--seeds", "2", "--epochs", "2", "--device", "cpu"]  # fmt: skip
    with one_thread():
        assert main([str(a) for a in argv]) == 0
    return out


def test_the_suite_is_in_the_summary_beside_the_seed_experiment(suite_out: Path):
    summary = json.loads((suite_out / "summary.json").read_text())
    assert summary["models"] == ["rnn", "lstm", "gru"]  # the seed experiment is untouched
    section = summary["accuracy"]
    assert section["seeds"] == summary["seeds"] == [0, 1]
    rows = section["rows"]
    assert list(rows) == ["ngram", "best_single", "best_ensemble"]
    for key in ("best_single", "best_ensemble"):
        assert len(rows[key]["test_accuracy"]["values"]) == 2
        for field in ("ece_before", "ece_after", "coverage", "mean_set_size"):
            assert len(rows[key][field]["values"]) == 2
    for seed in (0, 1):
        ensemble = json.loads((suite_out / "runs" / f"best-seed{seed}" / "metrics.json").read_text())
        assert rows["best_ensemble"]["test_accuracy"]["values"][seed] == ensemble["accuracy"]
    assert set(section["seed_cells_calibration"]) == {"rnn", "lstm", "gru"}
    assert sum(b["count"] for b in section["reliability"]["after"]) == summary["setup"]["split"]["n_test"]


def test_the_suite_runs_are_ordinary_run_folders(suite_out: Path):
    assert isinstance(load_predictor(suite_out / "runs" / "ngram"), NgramPredictor)
    ensemble = load_predictor(suite_out / "runs" / "best-seed1")
    assert isinstance(ensemble, EnsemblePredictor) and len(ensemble.members) == 2
    assert ensemble.predict(["Aeiou"], top_k=1)[0]["predictions"][0]["language"] == "Alpha"


def test_the_report_has_the_accuracy_table_and_a_reliability_diagram(suite_out: Path):
    markdown = (suite_out / "report.md").read_text()
    assert "## Accuracy: the best recipes beside the three cells" in markdown
    for row in ("RNN (seed experiment)", "char 1–4-gram logistic regression", "best ensemble (--preset best)"):
        assert row in markdown
    assert (suite_out / "figures" / "reliability.png").stat().st_size > 1000
    assert "reliability" in (suite_out / "report.html").read_text()
