"""The original report's closing lessons, measured: does dropout help, and how much do hyperparameters matter?

    namelab compare --suite insights --out reports/insights

Dropout ablation: every compared cell on every seed with dropout 0, half the
configured dropout and the configured dropout (0.5 by default), on the compare's one
split; runs with the same seed differ only in dropout, so the configured dropout is
judged against none run for run, by the same rule as every other finding.

Hyperparameter grid: the fastest compared cell (the RNN when it is compared) over
learning rate × hidden size, 3 × 3 around the configuration (lr / 3, lr, 3 · lr;
hidden / 4, hidden / 2, hidden), on the first :data:`GRID_SEEDS` seeds. Its spread of
validation accuracy is set against the spread that reseeding alone gives, and against
what changing the cell gives at the configuration.

A run whose configuration another part of the compare already trained is reused
(:func:`namelab.experiment.compare.train_run`): the grid's centre is the ablation's configured
dropout, which is also the seed experiment's run when both suites run.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..runs.config import TrainConfig
from ..train.loop import TrainResult
from .compare import Experiment, predictions_in_order, run_name, train_run
from .stats import INCONCLUSIVE, NOISE_SE, NOT_SUPPORTED, SUPPORTED, describe, paired_difference, verdict_of

GRID_SEEDS = 2
GRID_LR_FACTORS = (1 / 3, 1.0, 3.0)
GRID_HIDDEN_FACTORS = (0.25, 0.5, 1.0)
# The cells from fastest to slowest: the grid tunes the first one compared.
CELLS_BY_SPEED = ("rnn", "gru", "lstm")
DROPOUT_MEASURES = ("test_accuracy", "test_macro_f1")


def variant_name(config: TrainConfig, base: TrainConfig) -> str:
    """``rnn-seed0`` for the configuration itself, ``rnn-seed0-dropout0`` or ``rnn-seed0-lr0.002-hidden64`` off it."""
    name = run_name(config.cell, config.seed)
    for field, label in (("dropout", "dropout"), ("lr", "lr"), ("hidden_size", "hidden")):
        value = getattr(config, field)
        if value != getattr(base, field):
            name += f"-{label}{value:g}"
    return name


def dropout_values(base: TrainConfig) -> list[float]:
    if base.dropout <= 0:
        raise ValueError("the dropout ablation compares dropout 0 with the configured dropout; configure one above 0")
    return [0.0, base.dropout / 2, base.dropout]


def grid_axes(base: TrainConfig) -> tuple[list[float], list[int]]:
    """Learning rates and hidden sizes of the grid, both around (and including) the configuration's."""
    lrs = [base.lr * f if f != 1.0 else base.lr for f in GRID_LR_FACTORS]
    hidden = sorted({max(1, round(base.hidden_size * f)) for f in GRID_HIDDEN_FACTORS})
    return lrs, hidden


def grid_model(models: Sequence[str]) -> str:
    return min(models, key=lambda m: CELLS_BY_SPEED.index(m) if m in CELLS_BY_SPEED else len(CELLS_BY_SPEED))


def _key(value: float) -> str:
    """A dropout value as a JSON key: ``"0"``, ``"0.25"``, ``"0.5"``."""
    return f"{value:g}"


# -- runs -------------------------------------------------------------------------------------


def _record(experiment: Experiment, config: TrainConfig, name: str, result: TrainResult) -> dict:
    """What the insights keep of one run: its settings, test metrics, curves and its accuracy on its training names."""
    train_names = experiment.split.train
    predicted, _ = predictions_in_order(result.model, train_names, experiment.corpus.vocab, experiment.labels)
    val_accuracy = [row["val_accuracy"] for row in result.history]
    return {
        "model": config.cell,
        "seed": config.seed,
        "dropout": config.dropout,
        "lr": config.lr,
        "hidden_size": config.hidden_size,
        "run_dir": f"runs/{name}",
        "test_accuracy": result.metrics["accuracy"],
        "test_macro_f1": result.metrics["macro_f1"],
        "best_val_accuracy": max(val_accuracy),
        # The kept weights in eval mode, on the names they were trained on: the train side of the gap.
        "kept_train_accuracy": float(np.mean(np.asarray(predicted) == np.asarray([e.label for e in train_names]))),
        "seconds_per_epoch": float(np.mean([row["seconds"] for row in result.history])),
        "history": [
            {k: row[k] for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")}
            for row in result.history
        ],
    }


def _train(experiment: Experiment, config: TrainConfig, done: dict[str, dict], total: int) -> dict:
    name = variant_name(config, experiment.settings.config)
    if name not in done:
        experiment.log(f"== insights run {len(done) + 1}/{total}: {name}")
        done[name] = _record(experiment, config, name, train_run(experiment, config, name))
    return done[name]


def insights_suite(experiment: Experiment) -> dict:
    """Train the dropout ablation and the hyperparameter grid; return their section of the summary."""
    settings, base = experiment.settings, experiment.settings.config
    dropouts = dropout_values(base)
    lrs, hidden_sizes = grid_axes(base)
    tuned = grid_model(settings.models)
    seeds = list(range(settings.seeds))
    grid_seeds = seeds[:GRID_SEEDS]
    ablation = [replace(base, cell=m, seed=s, dropout=d) for s in seeds for m in settings.models for d in dropouts]
    grid = [replace(base, cell=tuned, seed=s, lr=lr, hidden_size=h) for s in grid_seeds for lr in lrs
            for h in hidden_sizes]
    total = len({variant_name(c, base) for c in ablation + grid})
    done: dict[str, dict] = {}
    ablation_runs = [_train(experiment, c, done, total) for c in ablation]
    grid_runs = [_train(experiment, c, done, total) for c in grid]
    dropout = aggregate_dropout(ablation_runs, settings.models, dropouts, seeds)
    hyper = aggregate_grid(grid_runs, tuned, lrs, hidden_sizes, grid_seeds, base, ablation_runs)
    return {
        "insights_runs": list(done.values()),
        "dropout": dropout,
        "hyperparameters": hyper,
        "thresholds": {"tuning_noise_ratio": NOISE_SE},
        "findings": [judge_dropout(dropout), judge_hyperparameters(hyper)],
    }


# -- the dropout ablation -----------------------------------------------------------------------


def _band(rows: np.ndarray) -> dict:
    """Per-epoch mean, min and max over seeds of a (seeds, epochs) array."""
    return {"mean": rows.mean(axis=0).tolist(), "min": rows.min(axis=0).tolist(), "max": rows.max(axis=0).tolist()}


def aggregate_dropout(runs: list[dict], models: Sequence[str], dropouts: list[float], seeds: list[int]) -> dict:
    """Per cell and dropout: test metrics over seeds, the train−test gap at the kept weights, per-epoch curves."""
    results: dict[str, dict] = {}
    for model in models:
        results[model] = {}
        for value in dropouts:
            mine = sorted((r for r in runs if r["model"] == model and r["dropout"] == value), key=lambda r: r["seed"])
            epochs = min(len(r["history"]) for r in mine)

            def per_epoch(field: str, rows=mine, epochs=epochs) -> np.ndarray:
                return np.asarray([[h[field] for h in r["history"][:epochs]] for r in rows], dtype=float)  # (S, E)

            results[model][_key(value)] = {
                "dropout": value,
                **{m: describe([r[m] for r in mine]) for m in (*DROPOUT_MEASURES, "best_val_accuracy")},
                "kept_train_accuracy": describe([r["kept_train_accuracy"] for r in mine]),
                "kept_gap": describe([r["kept_train_accuracy"] - r["test_accuracy"] for r in mine]),
                "curves": {
                    "epoch": list(range(1, epochs + 1)),
                    "train_accuracy": _band(per_epoch("train_accuracy")),
                    "val_accuracy": _band(per_epoch("val_accuracy")),
                    "gap": _band(per_epoch("train_accuracy") - per_epoch("val_accuracy")),
                },
            }
    return {"models": list(models), "values": dropouts, "default": dropouts[-1], "seeds": seeds, "results": results}


def judge_dropout(dropout: dict) -> dict:
    """Does the configured dropout beat none? Every cell, test accuracy and macro-F1, paired by seed.

    Supported: every comparison holds (:func:`namelab.experiment.compare.paired_difference`).
    Not supported: one is clearly reversed. Otherwise inconclusive.
    """
    with_, without = _key(dropout["default"]), _key(0.0)
    pairs = []
    for model in dropout["models"]:
        results = dropout["results"][model]
        for measure in DROPOUT_MEASURES:
            pair = paired_difference(results[with_][measure]["values"], results[without][measure]["values"])
            pairs.append({"model": model, "measure": measure, "first": dropout["default"], "second": 0.0, **pair})
    return {
        "key": "dropout",
        "kind": "dropout",
        "claim": "Regularisation: dropout improves generalisation",
        "measure": f"test accuracy and macro-F1 with dropout {dropout['default']:g} minus without, paired by seed, "
        "each cell (points)",
        "verdict": verdict_of([p["outcome"] for p in pairs]),
        "values": dropout["values"],
        "results": {
            model: {
                key: {m: r[m] for m in (*DROPOUT_MEASURES, "kept_gap")} for key, r in dropout["results"][model].items()
            }
            for model in dropout["models"]
        },
        "pairs": pairs,
    }


# -- the hyperparameter grid ---------------------------------------------------------------------


def aggregate_grid(
    runs: list[dict],
    model: str,
    lrs: list[float],
    hidden_sizes: list[int],
    seeds: list[int],
    base: TrainConfig,
    ablation_runs: list[dict],
) -> dict:
    """Grid of mean validation and test accuracy, its spread, the seed noise, and the cells at the configuration."""

    def at(lr: float, hidden: int) -> list[dict]:
        return [r for r in runs if r["lr"] == lr and r["hidden_size"] == hidden]

    val = np.asarray([[np.mean([r["best_val_accuracy"] for r in at(lr, h)]) for h in hidden_sizes] for lr in lrs])
    test = np.asarray([[np.mean([r["test_accuracy"] for r in at(lr, h)]) for h in hidden_sizes] for lr in lrs])
    points = [
        {"lr": lr, "hidden_size": h, "val_accuracy": float(val[i, j]), "test_accuracy": float(test[i, j])}
        for i, lr in enumerate(lrs)
        for j, h in enumerate(hidden_sizes)
    ]
    best = max(points, key=lambda p: p["val_accuracy"])
    worst = min(points, key=lambda p: p["val_accuracy"])
    centre = next(p for p in points if p["lr"] == base.lr and p["hidden_size"] == base.hidden_size)
    at_configuration = [r for r in ablation_runs if r["dropout"] == base.dropout]
    # Seed noise: the pooled spread of repeated runs of one grid point; with one seed per point,
    # the spread over seeds of the tuned cell's runs at the configuration.
    if len(seeds) > 1:
        variances = [np.var([r["best_val_accuracy"] for r in at(p["lr"], p["hidden_size"])], ddof=1) for p in points]
        seed_std, noise_source = float(math.sqrt(np.mean(variances))), "grid"
    else:
        repeats = [r["best_val_accuracy"] for r in at_configuration if r["model"] == model]
        seed_std = float(np.std(repeats, ddof=1)) if len(repeats) > 1 else None
        noise_source = "configuration"
    cells = {
        m: {
            "val_accuracy": describe([r["best_val_accuracy"] for r in at_configuration if r["model"] == m]),
            "test_accuracy": describe([r["test_accuracy"] for r in at_configuration if r["model"] == m]),
        }
        for m in dict.fromkeys(r["model"] for r in at_configuration)
    }
    return {
        "model": model,
        "lrs": lrs,
        "hidden_sizes": hidden_sizes,
        "seeds": seeds,
        "configuration": {"lr": base.lr, "hidden_size": base.hidden_size},
        "val_accuracy": val.tolist(),
        "test_accuracy": test.tolist(),
        "best": best,
        "worst": worst,
        "centre": centre,
        "spread": {"range": float(val.max() - val.min()), "std": float(val.std(ddof=1)) if val.size > 1 else None},
        "seed_noise": {"std": seed_std, "source": noise_source,
                       "of_mean": None if seed_std is None else seed_std / math.sqrt(len(seeds))},
        "cells": cells,
    }


def judge_hyperparameters(grid: dict) -> dict:
    """Does tuning move validation accuracy beyond what reseeding alone does?

    The spread across the grid (std of the grid points' mean validation accuracy) is
    divided by the seed noise of one grid point's mean (seed std / √seeds). Supported:
    the ratio is at least :data:`namelab.experiment.compare.NOISE_SE`. Not supported: it is at
    most 1 (no more spread than reseeding gives). Otherwise, or with no seed noise
    measured, inconclusive. The finding keeps, beside it, how far the best grid point
    is from the configuration and how far changing the cell moves accuracy.
    """
    noise, spread = grid["seed_noise"]["of_mean"], grid["spread"]["std"]
    ratio = spread / noise if noise and spread is not None else None
    if ratio is None:
        verdict = INCONCLUSIVE
    elif ratio >= NOISE_SE:
        verdict = SUPPORTED
    elif ratio <= 1.0:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    cell_val = {m: c["val_accuracy"]["mean"] for m, c in grid["cells"].items() if c["val_accuracy"]["mean"] is not None}
    cell_test = {m: c["test_accuracy"]["mean"] for m, c in grid["cells"].items()
                 if c["test_accuracy"]["mean"] is not None}
    return {
        "key": "hyperparameters",
        "kind": "hyperparameters",
        "claim": "Tuning: hyperparameters have an important effect on performance",
        "measure": f"validation accuracy over learning rate × hidden size ({grid['model']}): spread across the grid "
        "over the seed noise of a grid point",
        "verdict": verdict,
        "ratio": ratio,
        "threshold": NOISE_SE,
        "model": grid["model"],
        "lrs": grid["lrs"],
        "hidden_sizes": grid["hidden_sizes"],
        "grid_seeds": len(grid["seeds"]),
        "spread": grid["spread"],
        "seed_noise": grid["seed_noise"],
        "best": grid["best"],
        "worst": grid["worst"],
        "centre": grid["centre"],
        "tuning_gain": {
            "val_accuracy": grid["best"]["val_accuracy"] - grid["centre"]["val_accuracy"],
            "test_accuracy": grid["best"]["test_accuracy"] - grid["centre"]["test_accuracy"],
        },
        "cells": {"val_accuracy": cell_val, "test_accuracy": cell_test},
        "cell_range": {
            "val_accuracy": max(cell_val.values()) - min(cell_val.values()) if len(cell_val) > 1 else None,
            "test_accuracy": max(cell_test.values()) - min(cell_test.values()) if len(cell_test) > 1 else None,
        },
        "pairs": [],
    }


__all__ = [
    "aggregate_dropout",
    "aggregate_grid",
    "dropout_values",
    "grid_axes",
    "grid_model",
    "insights_suite",
    "judge_dropout",
    "judge_hyperparameters",
    "variant_name",
]
