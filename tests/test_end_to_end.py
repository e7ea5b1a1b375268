"""End to end on the real dataset: train, evaluate, predict through the CLI (slow; CI runs it)."""

from __future__ import annotations

import json

import pytest
from helpers import REAL_NAMES, one_thread, requires_real_data

from namelab.cli.commands import main

pytestmark = [pytest.mark.slow, requires_real_data]


def test_train_evaluate_predict_on_the_real_names(tmp_path, capsys) -> None:
    run = tmp_path / "lstm"
    with one_thread():
        assert main(["train", "--cell", "lstm", "--epochs", "3", "--hidden-size", "128", "--batch-size", "128",
                     "--data-dir", str(REAL_NAMES), "--out", str(run), "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    # The split reads names case-folded, as the model does: "An" and "an" go to one part together.
    assert (config["n_train"], config["n_val"], config["n_test"]) == (14388, 1809, 1791)
    assert len(config["labels"]) == 18
    # Always answering the majority class (Russian) scores about 0.52 on this split.
    assert metrics["accuracy"] > 0.70
    assert sum(row["support"] for row in metrics["per_class"].values()) == 1791

    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(REAL_NAMES), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(metrics["accuracy"])

    assert main(["predict", str(run), "Nakamura", "Ivanov", "--format", "json", "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["predictions"][0]["language"] for row in rows] == ["Japanese", "Russian"]
