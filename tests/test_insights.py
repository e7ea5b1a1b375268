"""Tests for `namelab compare --suite insights`: the dropout ablation, the hyperparameter grid, the suite hook.

One quick insights compare on the tiny separable names folder runs once per module;
the checks read its output and recompute its numbers from the run folders.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_thread

from namelab.cli.commands import main
from namelab.data.corpus import Corpus
from namelab.experiment.compare import CompareSettings, default_epochs, parse_suites
from namelab.experiment.insights import (
    aggregate_dropout,
    dropout_values,
    grid_axes,
    grid_model,
    judge_dropout,
    judge_hyperparameters,
    variant_name,
)
from namelab.experiment.runner import merge_section
from namelab.experiment.stats import NOISE_SE
from namelab.report.document import finding_evidence
from namelab.runs.checkpoint import load_run
from namelab.runs.config import TrainConfig
from namelab.train.loop import predict_examples

SEEDS = 3
EPOCHS = 3
HIDDEN = 16
INSIGHT_FIGURES = {"dropout-gap", "dropout-scores", "hyperparameters"}


def run_cli(argv: list[str]) -> None:
    with one_thread():  # 16-unit matrices: a second thread on a shared 2-core machine only adds contention
        assert main(argv) == 0


@pytest.fixture(scope="module")
def insights_out(tiny_names_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("insights") / "report"
    run_cli(["compare", "--suite", "insights", "--quick", "--data-dir", str(tiny_names_dir), "--out", str(out),
             "--hidden-size", str(HIDDEN), "--seeds", str(SEEDS), "--epochs", str(EPOCHS), "--device", "cpu"])
    return out


@pytest.fixture(scope="module")
def summary(insights_out) -> dict:
    return json.loads((insights_out / "summary.json").read_text(encoding="utf-8"))


def folder_config(folder: Path) -> dict:
    return load_run(folder)[1]["config"]


# -- the written suite -------------------------------------------------------------------------


def test_insights_report_has_both_findings_and_figures(insights_out, summary):
    assert summary["suites"] == ["insights"]
    assert set(summary["files"]["figures"]) == INSIGHT_FIGURES
    for rel in summary["files"]["figures"].values():
        assert (insights_out / rel).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    findings = {f["key"]: f for f in summary["findings"]}
    assert set(findings) == {"dropout", "hyperparameters"}
    markdown = (insights_out / "report.md").read_text(encoding="utf-8")
    html = (insights_out / "report.html").read_text(encoding="utf-8")
    for finding in findings.values():
        assert finding["verdict"] in ("supported", "not supported", "inconclusive")
        assert finding["claim"] in markdown and finding["claim"] in html
        assert "evidence" not in finding  # words live in the report, numbers in the summary
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == len(INSIGHT_FIGURES)
    assert markdown.startswith("# namelab: dropout and hyperparameters")
    # The seed experiment's sections belong to the seed suite only.
    assert "Gradient flow" not in markdown and "runs" not in summary


def test_every_configuration_is_trained_once(insights_out, summary, tiny_names_dir):
    base = TrainConfig()
    dropouts = dropout_values(base)
    lrs, hidden = grid_axes(replace(base, hidden_size=HIDDEN))
    ablation = SEEDS * 3 * len(dropouts)
    grid = 2 * len(lrs) * len(hidden)
    shared = 2  # the grid's centre on seeds 0 and 1 is the ablation's configured-dropout RNN run
    folders = {p.name for p in (insights_out / "runs").iterdir()}
    assert len(folders) == ablation + grid - shared == len(summary["insights_runs"])
    assert folders == {Path(r["run_dir"]).name for r in summary["insights_runs"]}
    assert {"rnn-seed0", "rnn-seed1", "rnn-seed0-dropout0", "gru-seed2-dropout0.25", "rnn-seed1-lr0.018-hidden4"} <= folders
    splits = set()
    for run in summary["insights_runs"]:
        folder = insights_out / run["run_dir"]
        config = folder_config(folder)
        assert (config["cell"], config["seed"], config["dropout"], config["lr"], config["hidden_size"]) == (
            run["model"], run["seed"], run["dropout"], run["lr"], run["hidden_size"])
        assert config["epochs"] == EPOCHS
        metrics = json.loads((folder / "metrics.json").read_text())
        assert run["test_accuracy"] == metrics["accuracy"] and run["test_macro_f1"] == metrics["macro_f1"]
        history = json.loads((folder / "history.json").read_text())
        assert run["best_val_accuracy"] == max(row["val_accuracy"] for row in history)
        splits.add(tuple(load_run(folder)[1][k] for k in ("n_train", "n_val", "n_test")))
    assert len(splits) == 1


def test_kept_train_accuracy_is_the_kept_weights_on_the_training_names(insights_out, summary, tiny_names_dir):
    run = next(r for r in summary["insights_runs"] if r["dropout"] > 0 and r["model"] == "lstm")
    model, meta = load_run(insights_out / run["run_dir"])
    corpus = Corpus.from_folder(tiny_names_dir)
    train = corpus.split(seed=meta["config"]["split_seed"]).train
    _, predicted, targets = predict_examples(model, train, corpus.vocab, torch.device("cpu"))
    assert run["kept_train_accuracy"] == pytest.approx(np.mean(np.asarray(predicted) == np.asarray(targets)))


def test_dropout_finding_pairs_the_runs_by_seed(summary):
    finding = next(f for f in summary["findings"] if f["key"] == "dropout")
    runs = summary["insights_runs"]
    assert len(finding["pairs"]) == 3 * 2  # each cell, accuracy and macro-F1
    for pair in finding["pairs"]:
        def values(dropout, pair=pair):
            chosen = sorted((r for r in runs if r["model"] == pair["model"] and r["dropout"] == dropout
                             and r["lr"] == TrainConfig().lr and r["hidden_size"] == HIDDEN), key=lambda r: r["seed"])
            assert [r["seed"] for r in chosen] == list(range(SEEDS))
            return np.asarray([r[pair["measure"]] for r in chosen])

        difference = values(0.5) - values(0.0)
        assert pair["mean"] == pytest.approx(difference.mean())
        assert pair["positive"] == int((difference > 0).sum())
    gap = summary["dropout"]["results"]["gru"]["0"]["curves"]["gap"]["mean"]
    assert len(gap) == EPOCHS
    gru0 = [r for r in runs if r["model"] == "gru" and r["dropout"] == 0.0]
    expected = np.mean([[h["train_accuracy"] - h["val_accuracy"] for h in r["history"]] for r in gru0], axis=0)
    np.testing.assert_allclose(gap, expected)


def test_hyperparameter_grid_numbers_come_from_the_runs(summary):
    grid = summary["hyperparameters"]
    assert grid["model"] == "rnn" and grid["seeds"] == [0, 1]
    assert grid["lrs"] == pytest.approx([0.002, 0.006, 0.018])
    assert grid["hidden_sizes"] == [4, 8, 16]
    runs = [r for r in summary["insights_runs"] if r["model"] == "rnn" and r["dropout"] == 0.5 and r["seed"] < 2]
    val = np.zeros((3, 3))
    variances = []
    for i, lr in enumerate(grid["lrs"]):
        for j, hidden in enumerate(grid["hidden_sizes"]):
            point = [r["best_val_accuracy"] for r in runs if r["lr"] == lr and r["hidden_size"] == hidden]
            assert len(point) == 2
            val[i, j] = np.mean(point)
            variances.append(np.var(point, ddof=1))
    np.testing.assert_allclose(grid["val_accuracy"], val)
    assert grid["spread"]["range"] == pytest.approx(val.max() - val.min())
    finding = next(f for f in summary["findings"] if f["key"] == "hyperparameters")
    noise = math.sqrt(np.mean(variances)) / math.sqrt(2)
    if noise > 0:
        assert finding["ratio"] == pytest.approx(val.std(ddof=1) / noise)
    assert finding["tuning_gain"]["val_accuracy"] == pytest.approx(val.max() - val[1, 2])
    # Changing the cell: the configured runs of every cell, all seeds.
    for cell in ("rnn", "lstm", "gru"):
        configured = [r["best_val_accuracy"] for r in summary["insights_runs"]
                      if r["model"] == cell and r["dropout"] == 0.5 and r["lr"] == 0.006 and r["hidden_size"] == 16]
        assert len(configured) == SEEDS
        assert finding["cells"]["val_accuracy"][cell] == pytest.approx(np.mean(configured))


def test_seed_and_insights_together_share_the_configured_runs(tiny_names_dir, tmp_path):
    out = tmp_path / "both"
    run_cli(["compare", "--suite", "seed,insights", "--quick", "--data-dir", str(tiny_names_dir), "--out", str(out),
             "--models", "rnn", "--hidden-size", "8", "--seeds", "2", "--epochs", "2", "--device", "cpu"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suites"] == ["seed", "insights"]
    keys = [f["key"] for f in summary["findings"]]
    assert keys[-2:] == ["dropout", "hyperparameters"] and "accuracy_ranking" in keys
    seed_dirs = {r["run_dir"] for r in summary["runs"]}
    assert seed_dirs == {"runs/rnn-seed0", "runs/rnn-seed1"}
    assert seed_dirs <= {r["run_dir"] for r in summary["insights_runs"]}
    # 2 seeds x 3 dropouts, plus the 3 x 3 grid on 2 seeds, less the 2 centre runs already trained.
    assert len(list((out / "runs").iterdir())) == 6 + 18 - 2
    assert {"gradient-flow", "dropout-gap", "hyperparameters"} <= set(summary["files"]["figures"])
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# namelab: RNN vs LSTM vs GRU on surnames; dropout and hyperparameters")


@pytest.mark.parametrize(
    ("suite", "message"),
    [("seed,speed", "unknown suite(s) speed; choose from seed, insights"),
     ("insights,insights", "lists a suite twice"), (",", "unknown suite(s) (none given)")],
)
def test_unknown_suites_fail_before_training(suite, message, tiny_names_dir, tmp_path, capsys):
    rc = main(["compare", "--suite", suite, "--quick", "--data-dir", str(tiny_names_dir), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- the pieces, on synthetic numbers ------------------------------------------------------------


def test_suite_settings():
    assert parse_suites(" Insights , seed") == ("insights", "seed")
    assert CompareSettings().suites == ("seed",)
    assert default_epochs(("insights",)) == 10 < default_epochs(("seed", "insights")) == TrainConfig().epochs
    base = TrainConfig(hidden_size=256, lr=6e-3, dropout=0.5)
    assert dropout_values(base) == [0.0, 0.25, 0.5]
    assert grid_axes(base) == ([pytest.approx(0.002), 0.006, pytest.approx(0.018)], [64, 128, 256])
    assert grid_model(("lstm", "gru", "rnn")) == "rnn" and grid_model(("lstm", "gru")) == "gru"
    assert variant_name(replace(base, cell="gru", seed=2), base) == "gru-seed2"
    assert variant_name(replace(base, cell="rnn", dropout=0.0), base) == "rnn-seed0-dropout0"
    assert variant_name(replace(base, lr=0.002, hidden_size=64), base) == "lstm-seed0-lr0.002-hidden64"
    with pytest.raises(ValueError, match="configure one above 0"):
        dropout_values(replace(base, dropout=0.0))


def test_merge_section_adds_merges_extends_and_refuses_collisions():
    summary = {"setup": {"a": 1}, "findings": [1], "runs": []}
    merge_section(summary, {"setup": {"b": 2}, "findings": [2], "dropout": {}})
    assert summary == {"setup": {"a": 1, "b": 2}, "findings": [1, 2], "runs": [], "dropout": {}}
    with pytest.raises(ValueError, match="two suites write the summary key 'dropout'"):
        merge_section(summary, {"dropout": 3})


def fake_dropout(with_dropout: dict[str, list[float]], without: dict[str, list[float]]) -> dict:
    """An ablation summary from per-seed accuracies (macro-F1 = accuracy / 2) of dropout 0.5 and 0."""
    runs = []
    for model in with_dropout:
        for dropout, values in ((0.5, with_dropout[model]), (0.0, without[model]), (0.25, without[model])):
            for seed, value in enumerate(values):
                history = [{"train_accuracy": value + 0.1, "val_accuracy": value}]
                runs.append({"model": model, "seed": seed, "dropout": dropout, "test_accuracy": value,
                             "test_macro_f1": value / 2, "best_val_accuracy": value, "kept_train_accuracy": 0.9,
                             "history": history})
    return aggregate_dropout(runs, list(with_dropout), [0.0, 0.25, 0.5], [0, 1, 2])


def test_judge_dropout():
    helps = judge_dropout(fake_dropout({"lstm": [0.82, 0.83, 0.81], "rnn": [0.78, 0.77, 0.79]},
                                       {"lstm": [0.79, 0.80, 0.79], "rnn": [0.75, 0.75, 0.76]}))
    assert helps["verdict"] == "supported"
    text = finding_evidence(helps)
    assert "LSTM accuracy, dropout 0.5 − dropout 0: +2.67 points" in text
    assert "3/3 seeds in favour → holds" in text
    hurts = judge_dropout(fake_dropout({"lstm": [0.82, 0.83, 0.81], "rnn": [0.70, 0.71, 0.70]},
                                       {"lstm": [0.79, 0.80, 0.79], "rnn": [0.75, 0.75, 0.76]}))
    assert hurts["verdict"] == "not supported"
    noisy = judge_dropout(fake_dropout({"lstm": [0.82, 0.78, 0.81]}, {"lstm": [0.79, 0.80, 0.79]}))
    assert noisy["verdict"] == "inconclusive"
    assert "within the noise" in finding_evidence(noisy)


def fake_grid(val: list[list[float]], seed_std: float | None, seeds: int = 2) -> dict:
    values = np.asarray(val)
    points = [{"lr": lr, "hidden_size": h, "val_accuracy": float(values[i, j]), "test_accuracy": float(values[i, j])}
              for i, lr in enumerate([1, 2, 3]) for j, h in enumerate([4, 8, 16])]
    centre = points[5]
    return {
        "model": "rnn", "lrs": [1, 2, 3], "hidden_sizes": [4, 8, 16], "seeds": list(range(seeds)),
        "best": max(points, key=lambda p: p["val_accuracy"]), "worst": min(points, key=lambda p: p["val_accuracy"]),
        "centre": centre,
        "spread": {"range": float(values.max() - values.min()), "std": float(values.std(ddof=1))},
        "seed_noise": {"std": seed_std, "source": "grid",
                       "of_mean": None if seed_std is None else seed_std / math.sqrt(seeds)},
        "cells": {m: {"val_accuracy": {"mean": v}, "test_accuracy": {"mean": v}}
                  for m, v in (("rnn", 0.77), ("gru", 0.82), ("lstm", 0.81))},
    }


def test_judge_hyperparameters():
    wide = [[0.60, 0.70, 0.74], [0.65, 0.73, 0.77], [0.55, 0.72, 0.76]]
    supported = judge_hyperparameters(fake_grid(wide, seed_std=0.01))
    assert supported["verdict"] == "supported"
    assert supported["ratio"] == pytest.approx(np.std(wide, ddof=1) / (0.01 / math.sqrt(2)))
    assert supported["ratio"] >= NOISE_SE
    assert supported["cell_range"]["val_accuracy"] == pytest.approx(0.05)
    assert supported["tuning_gain"]["val_accuracy"] == pytest.approx(0.0)  # the centre is the best point
    text = finding_evidence(supported)
    assert "a range of 22.00 points" in text
    assert "moves validation accuracy by 5.00 points (RNN 77.00, LSTM 81.00, GRU 82.00" in text
    flat = [[0.770, 0.772, 0.771], [0.769, 0.771, 0.770], [0.772, 0.770, 0.771]]
    assert judge_hyperparameters(fake_grid(flat, seed_std=0.01))["verdict"] == "not supported"
    between = judge_hyperparameters(fake_grid([[0.77, 0.78, 0.77], [0.76, 0.77, 0.78], [0.77, 0.77, 0.76]],
                                              seed_std=0.006))
    assert 1 < between["ratio"] < NOISE_SE and between["verdict"] == "inconclusive"
    unmeasured = judge_hyperparameters(fake_grid(wide, seed_std=None, seeds=1))
    assert unmeasured["verdict"] == "inconclusive" and unmeasured["ratio"] is None
    assert "no verdict" in finding_evidence(unmeasured)
