"""The seed suite: every cell × every seed on one split, measured and judged.

    section = seed_suite(experiment)     # runs, per-model results, gradient flow, findings
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..core.metrics import confusion_matrix
from ..data.corpus import Example
from .compare import Experiment, initial_model, predictions_in_order, run_name, run_record, train_run
from .probe import gradient_flow, probe_examples
from .stats import CONVERGENCE_FRACTION, GRADIENT_DECADES, LEVEL_TOLERANCE, describe, judge_findings

TOP_CONFUSIONS = 5


EXAMPLES_PER_CONFUSION = 4


def mean_curves(histories: list[list[dict]]) -> dict:
    """Per-epoch mean, min, max and std over seeds of every history field."""
    epochs = min(len(h) for h in histories)
    out: dict = {"epoch": list(range(1, epochs + 1))}
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        array = np.asarray([[row[name] for row in h[:epochs]] for h in histories], dtype=float)  # (S, E)
        out[name] = {
            "mean": array.mean(axis=0).tolist(),
            "min": array.min(axis=0).tolist(),
            "max": array.max(axis=0).tolist(),
            "std": array.std(axis=0, ddof=1).tolist() if len(histories) > 1 else None,
        }
    return out


def _confusions(
    confusion: np.ndarray, labels: list[str], errors: dict[tuple[int, int], dict[str, list[float]]], seeds: int
) -> list[dict]:
    """The most frequent (true, predicted) mistakes, pooled over seeds, with example test names.

    ``errors[(true, predicted)][name]`` lists the probability each erring run gave the
    wrong language; examples are the names most seeds got wrong, then the most confidently.
    """
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    support = confusion.sum(axis=1)
    cells = sorted(
        ((int(off[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if off[i, j] > 0),
        key=lambda c: (-c[0], c[1], c[2]),
    )[:TOP_CONFUSIONS]
    out = []
    for count, i, j in cells:
        names = errors.get((i, j), {})
        ranked = sorted(names.items(), key=lambda item: (-len(item[1]), -float(np.mean(item[1])), item[0]))
        ranked = ranked[:EXAMPLES_PER_CONFUSION]
        out.append(
            {
                "true": labels[i],
                "predicted": labels[j],
                "count": count,
                "share": float(count / support[i]) if support[i] else 0.0,
                "examples": [
                    {"name": name, "seeds": len(probs), "of": seeds, "probability": float(np.mean(probs))}
                    for name, probs in ranked
                ],
            }
        )
    return out


def record_errors(errors: dict, examples: Sequence[Example], predicted: list[int], confidence: list[float]) -> None:
    """Add each misclassified name to ``errors[(true, predicted)][name]``, with the wrong language's probability."""
    for example, guess, probability in zip(examples, predicted, confidence):
        if guess != example.label:
            errors.setdefault((example.label, guess), {}).setdefault(example.name, []).append(probability)


def measure_seed_runs(experiment: Experiment, probe_batch: list[Example]) -> tuple[list[dict], dict, dict]:
    """Train every model on every seed; returns the run records, gradient norms on ``probe_batch`` and test errors."""
    settings, split, labels = experiment.settings, experiment.split, experiment.labels
    seeds = range(settings.seeds)
    total = len(settings.models) * len(seeds)
    runs: list[dict] = []
    flows: dict[str, dict[str, list]] = {m: {"init": [], "trained": []} for m in settings.models}
    errors: dict[str, dict] = {m: {} for m in settings.models}
    for seed in seeds:  # seed-major: an interrupted compare still has every model on the first seeds
        for model_name in settings.models:
            config = replace(settings.config, cell=model_name, seed=seed)
            name = run_name(model_name, seed)
            experiment.log(f"== run {len(runs) + 1}/{total}: {model_name} seed {seed} -> {experiment.out / 'runs' / name}")
            init = initial_model(config, experiment.corpus).to(experiment.device)
            flows[model_name]["init"].append(gradient_flow(init, probe_batch, experiment.corpus.vocab).norms.tolist())
            del init
            result = train_run(experiment, config, name)
            flows[model_name]["trained"].append(
                gradient_flow(result.model, probe_batch, experiment.corpus.vocab).norms.tolist()
            )
            predicted, confidence = predictions_in_order(result.model, split.test, experiment.corpus.vocab, labels)
            record_errors(errors[model_name], split.test, predicted, confidence)
            recomputed = confusion_matrix([e.label for e in split.test], predicted, len(labels))
            matches = recomputed.tolist() == result.metrics["confusion"]
            if not matches:
                experiment.log(f"warning: runs/{name}: predictions by name differ from metrics.json; "
                               "examples may not match counts")
            runs.append({**run_record(experiment, config, name, result), "predictions_match_metrics": matches})
            done = experiment.elapsed()
            experiment.log(
                f"   test accuracy {result.metrics['accuracy']:.4f}  macro-F1 {result.metrics['macro_f1']:.4f}  "
                f"elapsed {done:.0f}s, about {done / len(runs) * (total - len(runs)):.0f}s to go"
            )
    return runs, flows, errors


_DESCRIBED = (
    "test_accuracy",
    "test_macro_f1",
    "seconds_per_epoch",
    "train_seconds",
    "final_train_accuracy",
    "final_val_accuracy",
    "epochs_to_95",
    "val_loss_change_std",
    "val_accuracy_change_std",
)


def aggregate_model(runs: list[dict], labels: list[str], errors: dict) -> dict:
    """One model's runs pooled: every measure described over seeds, mean curves, per-class scores, confusions."""
    confusion = np.sum([np.asarray(r["confusion"]) for r in runs], axis=0)
    per_class = {}
    for label in labels:
        rows = [r["per_class"][label] for r in runs]
        per_class[label] = {
            "precision": float(np.mean([row["precision"] for row in rows])),
            "recall": float(np.mean([row["recall"] for row in rows])),
            "f1": float(np.mean([row["f1"] for row in rows])),
            "f1_std": float(np.std([row["f1"] for row in rows], ddof=1)) if len(rows) > 1 else None,
            "support": rows[0]["support"],
        }
    return {
        "seeds": [r["seed"] for r in runs],
        "parameters": runs[0]["parameters"],
        **{field: describe([r[field] for r in runs]) for field in _DESCRIBED},
        "best_epoch": [r["best_epoch"] for r in runs],
        "curves": mean_curves([r["history"] for r in runs]),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confused_pairs": _confusions(confusion, labels, errors, len(runs)),
    }


def aggregate_gradient(flows: dict[str, list]) -> dict:
    """One model's gradient norms per distance, at initialization and trained: mean, min, max, per seed, ratios."""
    entry = {}
    for stage in ("init", "trained"):
        array = np.asarray(flows[stage], dtype=float)  # (S, D)
        entry[stage] = {
            "mean": array.mean(axis=0).tolist(),
            "min": array.min(axis=0).tolist(),
            "max": array.max(axis=0).tolist(),
            "per_seed": array.tolist(),
        }
        entry[f"ratio_{stage}"] = describe((array[:, -1] / array[:, 0]).tolist())
    return entry


def seed_suite(experiment: Experiment) -> dict:
    """The classic experiment: every model on every seed, measured and judged against the original report."""
    settings = experiment.settings
    probe_batch = probe_examples(experiment.split.test)
    runs, flows, errors = measure_seed_runs(experiment, probe_batch)
    labels = experiment.labels
    results = {
        m: aggregate_model([r for r in runs if r["model"] == m], labels, errors[m]) for m in settings.models
    }
    gradient = {m: aggregate_gradient(flows[m]) for m in settings.models}
    return {
        "setup": {
            "probe": {
                "names": [e.name for e in probe_batch],
                "n_names": len(probe_batch),
                "distances": len(gradient[settings.models[0]]["init"]["mean"]),
            },
        },
        "thresholds": {
            "convergence_fraction": CONVERGENCE_FRACTION,
            "level_tolerance": LEVEL_TOLERANCE,
            "gradient_decades": GRADIENT_DECADES,
        },
        "runs": runs,
        "results": results,
        "gradient": gradient,
        "findings": judge_findings(results, gradient),
    }
