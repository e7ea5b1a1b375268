"""Figures and the HTML/Markdown report of a compare run, drawn from its summary alone.

    summary = json.loads(Path("reports/compare/summary.json").read_text())
    write_report(summary, Path("reports/compare"))   # figures/*.png, report.md, report.html

Figures are drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot, so
no global figure state). ``report.html`` is one self-contained file: its images are
the same PNG bytes as ``figures/*.png``, embedded as base64 data URIs, with inline
CSS and no script, so it opens offline. ``report.md`` links the PNG files. Both are
rendered from one list of blocks, so they always say the same thing.

Each suite of ``namelab compare`` has a :class:`Section` in :data:`SECTIONS` (its title,
figures, blocks and judging rules); the findings keep numbers only, and
:func:`finding_evidence` puts them into words.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..core.cells import CELLS
from ..runs.checkpoint import atomic_write_bytes

MODEL_TITLES = {name: cell.title for name, cell in CELLS.items()}
# One colour per model in every figure (Okabe–Ito palette, readable with colour blindness).
MODEL_COLORS = {name: cell.color for name, cell in CELLS.items()}
_SPARE_COLORS = ("#CC79A7", "#E69F00", "#56B4E9", "#000000")
VERDICT_COLORS = {"supported": "#1b7837", "not supported": "#b2182b", "inconclusive": "#8c6d1f"}
DPI = 110


def model_title(model: str) -> str:
    return MODEL_TITLES.get(model, model.upper())


def model_color(model: str, models: list[str]) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    others = [m for m in models if m not in MODEL_COLORS]
    return _SPARE_COLORS[others.index(model) % len(_SPARE_COLORS)]


def fmt_mean_std(stats: dict, scale: float = 1.0, digits: int = 2) -> str:
    """``"83.12 ± 0.45"`` from a :func:`namelab.experiment.stats.describe` dict (no ± with one value)."""
    if stats.get("mean") is None:
        return "n/a"
    text = f"{stats['mean'] * scale:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std'] * scale:.{digits}f}"
    return text


def pct(value: float, digits: int = 2) -> str:
    return f"{value * 100:.{digits}f}"


# -- figures -------------------------------------------------------------------------------


def _new_figure(width: float, height: float, ncols: int = 1, **kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, **kwargs)[0]
    return fig, axes


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the file then carries no web address of any kind.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _band(ax, x, stats: dict, color: str, style: str, label: str, scale: float = 1.0) -> None:
    mean = np.asarray(stats["mean"]) * scale
    ax.plot(x, mean, style, color=color, label=label, linewidth=2, marker="o" if len(x) < 12 else None, markersize=3)
    low, high = np.asarray(stats["min"]) * scale, np.asarray(stats["max"]) * scale
    if np.any(high > low):
        ax.fill_between(x, low, high, color=color, alpha=0.18 if style == "-" else 0.10, linewidth=0)


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _seeds_note(summary: dict) -> str:
    n = len(summary["seeds"])
    return f"mean over {n} seeds, band = min–max" if n > 1 else "one seed"


def figure_curves(summary: dict, field: str) -> bytes:
    """Train (dashed) and validation (solid) ``field`` of every model on one plot."""
    fig, (ax,) = _new_figure(7.5, 4.6)
    scale = 100 if field == "accuracy" else 1
    for model in summary["models"]:
        curves = summary["results"][model]["curves"]
        color = model_color(model, summary["models"])
        _band(ax, curves["epoch"], curves[f"val_{field}"], color, "-", f"{model_title(model)} validation", scale)
        _band(ax, curves["epoch"], curves[f"train_{field}"], color, "--", f"{model_title(model)} train", scale)
    ax.set_xlabel("epoch")
    _integer_x(ax)
    ax.set_ylabel("accuracy (%)" if field == "accuracy" else "loss (negative log-likelihood)")
    ax.set_title(f"{'Accuracy' if field == 'accuracy' else 'Loss'} of every model ({_seeds_note(summary)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return _png(fig)


def figure_model_curves(summary: dict, model: str) -> bytes:
    """One model's loss and accuracy, train and validation."""
    fig, axes = _new_figure(10, 4, ncols=2)
    curves = summary["results"][model]["curves"]
    color = model_color(model, summary["models"])
    for ax, field, scale, ylabel in (
        (axes[0], "loss", 1, "loss (negative log-likelihood)"),
        (axes[1], "accuracy", 100, "accuracy (%)"),
    ):
        _band(ax, curves["epoch"], curves[f"train_{field}"], color, "--", "train", scale)
        _band(ax, curves["epoch"], curves[f"val_{field}"], color, "-", "validation", scale)
        ax.set_xlabel("epoch")
        _integer_x(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(f"{model_title(model)}: training curves ({_seeds_note(summary)})")
    return _png(fig)


def figure_confusion(summary: dict, model: str) -> bytes:
    """Row-normalized test confusion matrix, pooled over seeds, every non-zero count written in its cell."""
    labels = summary["labels"]
    counts = np.asarray(summary["results"][model]["confusion"], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.5 * len(labels) + 2.5)
    fig, (ax,) = _new_figure(size + 1.2, size)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fontsize = 7 if len(labels) > 12 else 9
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j] > 0:
                ax.text(
                    j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[i, j] > 0.55 else "black",
                )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted language")
    ax.set_ylabel("true language")
    n = len(summary["seeds"])
    pooled = f"counts summed over {n} seeds" if n > 1 else "counts"
    ax.set_title(f"{model_title(model)}: test confusion (colour = share of the row, {pooled})", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true language")
    return _png(fig)


def figure_f1(summary: dict) -> bytes:
    """Per-class F1 of every model, side by side, error bars = std over seeds."""
    labels = summary["labels"]
    models = summary["models"]
    support = summary["setup"]["test_counts"]
    fig, (ax,) = _new_figure(max(7.0, 0.65 * len(labels) + 2), 4.6)
    width = 0.8 / len(models)
    x = np.arange(len(labels))
    for k, model in enumerate(models):
        per_class = summary["results"][model]["per_class"]
        f1 = [per_class[label]["f1"] * 100 for label in labels]
        std = [(per_class[label]["f1_std"] or 0) * 100 for label in labels]
        ax.bar(
            x + (k - (len(models) - 1) / 2) * width, f1, width, yerr=std if len(summary["seeds"]) > 1 else None,
            color=model_color(model, models), label=model_title(model), capsize=1.5, error_kw={"linewidth": 0.8},
        )
    ax.set_xticks(x, [f"{label} ({support[label]})" for label in labels], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("F1 on the test split (%)")
    ax.set_ylim(0, 115)  # room for the legend above bars at 100
    ax.set_title(f"Per-language F1 (test names per language in brackets; {_seeds_note(summary).split(',')[0]})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncols=len(models), loc="upper center")
    return _png(fig)


def figure_gradient(summary: dict) -> bytes:
    """Mean ‖dL/dh_t‖ against steps before the end, at initialization and after training, log scale."""
    fig, axes = _new_figure(10, 4.2, ncols=2, sharey=True)
    probe = summary["setup"]["probe"]
    for ax, stage, title in ((axes[0], "init", "at initialization"), (axes[1], "trained", "after training")):
        for model in summary["models"]:
            flow = summary["gradient"][model][stage]
            distance = np.arange(len(flow["mean"]))
            color = model_color(model, summary["models"])
            ax.plot(distance, flow["mean"], "-o", color=color, label=model_title(model), markersize=3, linewidth=2)
            if len(summary["seeds"]) > 1:
                ax.fill_between(distance, flow["min"], flow["max"], color=color, alpha=0.18, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("steps before the last character")
        _integer_x(ax)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    axes[0].set_ylabel("mean ‖dL / dh_t‖")
    shortest = min(len(name) for name in probe["names"])
    fig.suptitle(
        f"Gradient reaching each step: {probe['n_names']} longest test names (≥ {shortest} characters), "
        f"{_seeds_note(summary)}",
        fontsize=10,
    )
    return _png(fig)


def figure_cost(summary: dict) -> bytes:
    """Parameters, seconds per epoch, and test accuracy against training time."""
    fig, axes = _new_figure(12, 3.9, ncols=3)
    models = summary["models"]
    colors = [model_color(m, models) for m in models]
    titles = [model_title(m) for m in models]
    params = [summary["results"][m]["parameters"] for m in models]
    bars = axes[0].bar(titles, params, color=colors)
    axes[0].bar_label(bars, [f"{p:,}" for p in params], fontsize=8)
    axes[0].set_ylabel("parameters")
    axes[0].set_title("Size")
    axes[0].margins(y=0.15)
    seconds = [summary["results"][m]["seconds_per_epoch"] for m in models]
    means = [s["mean"] for s in seconds]
    errors = np.array([[s["mean"] - s["min"] for s in seconds], [s["max"] - s["mean"] for s in seconds]])
    # The values go in the tick labels: a label on the bar would collide with its error bar.
    axes[1].bar([f"{t}\n{m:.2f} s" for t, m in zip(titles, means)], means, color=colors,
                yerr=errors if len(summary["seeds"]) > 1 else None, capsize=4)
    axes[1].set_ylabel("seconds per training epoch")
    spread = " (bar: min–max)" if len(summary["seeds"]) > 1 else ""
    axes[1].set_title(f"Time per epoch on {summary['setup']['device']}{spread}")
    for model, color in zip(models, colors):
        runs = [r for r in summary["runs"] if r["model"] == model]
        axes[2].scatter([r["train_seconds"] for r in runs], [r["test_accuracy"] * 100 for r in runs], color=color,
                        label=model_title(model), s=40, edgecolor="black", linewidth=0.5)
    axes[2].set_xlabel("training time (s, all epochs)")
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].set_title("Test accuracy vs training time (per run)")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=9)
    for ax in axes[:2]:
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def make_figures(summary: dict) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by file stem, in report order."""
    figures: dict[str, bytes] = {}
    for suite in suites_of(summary):
        figures.update(SECTIONS[suite].figures(summary))
    return figures


def suites_of(summary: dict) -> list[str]:
    """The suites a summary holds (a summary written before suites existed holds the seed experiment)."""
    return summary.get("suites", ["seed"])


def seed_figures(summary: dict) -> dict[str, bytes]:
    figures = {"loss": figure_curves(summary, "loss"), "accuracy": figure_curves(summary, "accuracy")}
    for model in summary["models"]:
        figures[f"curves-{model}"] = figure_model_curves(summary, model)
    for model in summary["models"]:
        figures[f"confusion-{model}"] = figure_confusion(summary, model)
    figures["f1"] = figure_f1(summary)
    figures["gradient-flow"] = figure_gradient(summary)
    figures["cost"] = figure_cost(summary)
    return figures


# -- the document as blocks ---------------------------------------------------------------
# ("h1"|"h2"|"h3"|"p", text) | ("table", headers, rows) | ("figure", key, caption) | ("list", items)


def _table(headers: list[str], rows: Iterable[Iterable]) -> tuple:
    return ("table", headers, [[str(cell) for cell in row] for row in rows])


def report_blocks(summary: dict) -> list[tuple]:
    """The whole document: introduction, every finding, each suite's sections, setup, the rules."""
    blocks = [*intro_blocks(summary), *findings_blocks(summary)]
    for suite in suites_of(summary):
        blocks += SECTIONS[suite].blocks(summary)
    return blocks + setup_blocks(summary) + rules_blocks(summary)


def seed_blocks(summary: dict) -> list[tuple]:
    return [
        *results_blocks(summary),
        *per_language_blocks(summary),
        *confusion_blocks(summary),
        *gradient_blocks(summary),
        *cost_blocks(summary),
        *runs_blocks(summary),
    ]


def intro_blocks(summary: dict) -> list[tuple]:
    setup, config = summary["setup"], summary["setup"]["config"]
    titles = ", ".join(model_title(m) for m in summary["models"])
    return [
        ("h1", "namelab: " + "; ".join(SECTIONS[suite].title for suite in suites_of(summary))),
        (
            "p",
            f"{titles}, each trained on {len(summary['seeds'])} seed(s) ({', '.join(str(s) for s in summary['seeds'])}) "
            f"on the same name-disjoint split (split seed {config['split_seed']}) for {config['epochs']} epochs, "
            f"hidden size {config['hidden_size']}, {config['impl']} engine, on {setup['device']}. Test accuracy is "
            f"measured on {setup['split']['n_test']} names no model saw during training; weights are those of the "
            f"epoch with the best validation accuracy. Total time {setup['total_seconds']:.0f} s."
            + (" This is a --quick smoke run: too short to judge the findings." if summary["quick"] else ""),
        ),
    ]


def findings_blocks(summary: dict) -> list[tuple]:
    return [
        ("h2", "Findings of the original report, checked"),
        (
            "p",
            "The original figures came from the training accuracy of a single run. Here every claim is checked "
            "against the measured numbers; the rules are given under “How findings are judged”.",
        ),
        _table(
            ["Original claim", "Measured by", "Verdict", "Evidence"],
            [[f["claim"], f["measure"], f["verdict"], finding_evidence(f)] for f in summary["findings"]],
        ),
    ]


def results_blocks(summary: dict) -> list[tuple]:
    models, results = summary["models"], summary["results"]
    n_seeds = len(summary["seeds"])
    blocks = [
        ("h2", "Results"),
        _table(
            [
                "Model",
                "Test accuracy (%)",
                "Test macro-F1 (%)",
                "Parameters",
                "Seconds / epoch",
                f"Epochs to {summary['thresholds']['convergence_fraction']:.0%} of final val. acc.",
                "Val. loss change std",
                "Final-epoch train acc. (%)",
            ],
            [
                [
                    model_title(m),
                    fmt_mean_std(results[m]["test_accuracy"], 100),
                    fmt_mean_std(results[m]["test_macro_f1"], 100),
                    f"{results[m]['parameters']:,}",
                    fmt_mean_std(results[m]["seconds_per_epoch"]),
                    fmt_mean_std(results[m]["epochs_to_95"]),
                    fmt_mean_std(results[m]["val_loss_change_std"], digits=4),
                    fmt_mean_std(results[m]["final_train_accuracy"], 100),
                ]
                for m in models
            ],
        ),
        (
            "p",
            f"Mean ± sample standard deviation over {n_seeds} seed(s). Macro-F1 weighs the {len(summary['labels'])} "
            "languages equally; "
            "the classes are very unbalanced, so it says more than accuracy about the small languages.",
        ),
        ("figure", "loss", "Loss of every model: validation solid, train dashed."),
        ("figure", "accuracy", "Accuracy of every model: validation solid, train dashed. Train accuracy is measured "
                               "during each epoch with dropout on, so it can sit below validation accuracy."),
        ("h3", "Training curves of each model"),
    ]
    for m in models:
        blocks.append(("figure", f"curves-{m}", f"{model_title(m)}: loss and accuracy, train and validation."))
    blocks.append(("h3", "Confusion matrices (test split)"))
    for m in models:
        blocks.append(("figure", f"confusion-{m}", f"{model_title(m)}: rows are the true language, normalized to 1."))
    return blocks


def per_language_blocks(summary: dict) -> list[tuple]:
    models, results, setup = summary["models"], summary["results"], summary["setup"]
    return [
        ("h2", "Per-language scores"),
        ("figure", "f1", "Per-language F1 of the models side by side."),
        _table(
            ["Language", "Test names"] + [f"{model_title(m)} {k}" for m in models for k in ("P", "R", "F1")],
            [
                [label, setup["test_counts"][label]]
                + [pct(results[m]["per_class"][label][k], 1) for m in models for k in ("precision", "recall", "f1")]
                for label in summary["labels"]
            ],
        ),
        ("p", f"Precision (P), recall (R) and F1 in %, mean over {len(summary['seeds'])} seed(s)."),
    ]


def confusion_blocks(summary: dict) -> list[tuple]:
    n_seeds = len(summary["seeds"])
    blocks: list[tuple] = [("h2", "Most confused languages")]
    for m in summary["models"]:
        pairs = summary["results"][m]["confused_pairs"]
        blocks.append(("h3", model_title(m)))
        if not pairs:
            blocks.append(("p", "No test name was misclassified."))
            continue
        blocks.append(
            _table(
                ["True → predicted", f"Names (summed over {n_seeds} seed(s))", "Share of the true language (%)",
                 "Example test names (seeds that erred, mean probability of the wrong language)"],
                [
                    [
                        f"{p['true']} → {p['predicted']}",
                        p["count"],
                        pct(p["share"], 1),
                        ", ".join(
                            f"{e['name']} ({e['seeds']}/{e['of']}, {e['probability']:.2f})" for e in p["examples"]
                        ),
                    ]
                    for p in pairs
                ],
            )
        )
    return blocks


def gradient_blocks(summary: dict) -> list[tuple]:
    probe = summary["setup"]["probe"]
    distances = probe["distances"]
    return [
        ("h2", "Gradient flow: the vanishing-gradient argument, measured"),
        (
            "p",
            f"The {probe['n_names']} longest test names are run through each cell step by step; the loss is each "
            f"name's negative log-likelihood at its last character (dropout off), and the norm of dL/dh_t is averaged "
            f"over the names at each distance from the end (0 … {distances - 1}). “At initialization” is the "
            "model "
            "each run started from (same seed, same construction order as training).",
        ),
        ("figure", "gradient-flow", "Gradient norm against steps before the end, log scale."),
        _table(
            ["Model", "At init: at the end", f"At init: {distances - 1} steps earlier", "At init: ratio",
             "Trained: at the end", f"Trained: {distances - 1} steps earlier", "Trained: ratio"],
            [
                [model_title(m)]
                + [
                    cell
                    for stage in ("init", "trained")
                    for cell in (
                        f"{summary['gradient'][m][stage]['mean'][0]:.3g}",
                        f"{summary['gradient'][m][stage]['mean'][-1]:.3g}",
                        _ratio_text(summary["gradient"][m][f"ratio_{stage}"]),
                    )
                ]
                for m in summary["models"]
            ],
        ),
        ("p", "Ratio = gradient norm at the farthest step / at the last step, per seed (mean, min–max over seeds)."),
    ]


def cost_blocks(summary: dict) -> list[tuple]:
    return [
        ("h2", "Cost"),
        ("figure", "cost", "Parameters, seconds per epoch and test accuracy against training time."),
    ]


def runs_blocks(summary: dict) -> list[tuple]:
    return [
        ("h2", "Every run"),
        _table(
            ["Run folder", "Model", "Seed", "Test accuracy (%)", "Test macro-F1 (%)", "Best epoch",
             "Seconds / epoch", "Training seconds"],
            [
                [r["run_dir"], model_title(r["model"]), r["seed"], pct(r["test_accuracy"]), pct(r["test_macro_f1"]),
                 r["best_epoch"], f"{r['seconds_per_epoch']:.2f}", f"{r['train_seconds']:.1f}"]
                for r in summary["runs"]
            ],
        ),
        (
            "p",
            "Each folder is a normal run: `namelab evaluate DIR/<folder>` and "
            "`namelab predict DIR/<folder> NAME` work on it.",
        ),
    ]


def setup_blocks(summary: dict) -> list[tuple]:
    setup = summary["setup"]
    return [
        ("h2", "Setup"),
        ("h3", "Data"),
        _table(
            ["Language", "Lines", "Distinct names", "Test names"],
            [[label, setup["raw_counts"][label], setup["dedup_counts"][label], setup["test_counts"][label]]
             for label in summary["labels"]]
            + [["total", setup["raw_total"], setup["dedup_total"], setup["split"]["n_test"]]],
        ),
        (
            "p",
            f"Folder {setup['data_dir']} (sha256 {setup['dataset_sha256'][:16]}…). Names are normalized to ASCII and "
            f"deduplicated per language: {setup['duplicates_removed']} duplicate lines removed, "
            f"{setup['skipped_lines']} lines without letters skipped, {setup['names_in_several_languages']} names "
            f"appear in more than one language. Split (seed {setup['split']['split_seed']}, no name in two parts): "
            f"train {setup['split']['n_train']}, validation {setup['split']['n_val']}, "
            f"test {setup['split']['n_test']}.",
        ),
        ("h3", "Hyperparameters (the same for every run; model and seed vary"
               + ("; the insights runs also vary dropout, learning rate and hidden size)"
                  if "insights" in suites_of(summary) else ")")),
        _table(["Setting", "Value"], [[k, v] for k, v in setup["config"].items()]),
        ("h3", "Software and hardware"),
        _table(
            ["Item", "Value"],
            [[k, v] for k, v in setup["versions"].items()]
            + [["device", setup["device"]], ["cpu", setup["cpu"]]]
            + ([["gpu", setup["gpu"]]] if setup.get("gpu") else [])
            + [["total time (s)", f"{setup['total_seconds']:.0f}"]],
        ),
    ]


def rules_blocks(summary: dict) -> list[tuple]:
    thresholds = summary["thresholds"]
    common = [
        f"Rankings compare models run for run: the runs with the same seed share the split and the budget, so "
        f"each seed gives one paired difference. A difference is clear when every seed agrees on its sign, "
        f"there are at least {thresholds['min_seeds']} seeds, and the mean difference is at least "
        f"{thresholds['noise_standard_errors']:g} standard errors (std / √n); otherwise it is within the "
        "noise. "
        "This is a rule of thumb for a handful of seeds, not a significance test.",
        "Supported: every pair in the claimed order is clear in the claimed direction. Not supported: at least "
        "one pair is clearly reversed. Inconclusive: anything else.",
    ]
    rules = [rule for suite in suites_of(summary) for rule in SECTIONS[suite].rules(summary)]
    return [("h2", "How findings are judged"), ("list", common + rules)]


def seed_rules(summary: dict) -> list[str]:
    thresholds = summary["thresholds"]
    return [
        f"Convergence: the (interpolated) epoch at which validation accuracy first reaches "
        f"{thresholds['convergence_fraction']:.0%} of its final value.",
        "Stability: the standard deviation of the epoch-to-epoch changes of the validation loss, per run "
        "(needs at least 3 epochs).",
        "Cost: parameters are exact (no noise); seconds per epoch are timed on this machine, which other "
        "programs may share.",
        f"Accuracy levels: a reported accuracy is reproduced when the mean test accuracy is within "
        f"{thresholds['level_tolerance'] * 100:.0f} points of it; not supported when it is farther than that "
        f"plus {thresholds['noise_standard_errors']:g} standard errors.",
        f"Vanishing gradient: supported when each gated cell keeps clearly more gradient at the farthest step "
        f"than the RNN after training, by at least {thresholds['gradient_decades']:g} decade(s) (10×) in the "
        "far/end ratio; not supported when a gated cell is clearly below that.",
    ]


# -- the evidence of a finding, in words ----------------------------------------------------


def finding_evidence(finding: dict) -> str:
    """The evidence column of a finding: one line of means, then one line per comparison."""
    return _EVIDENCE[finding["kind"]](finding)


def difference_text(first: str, second: str, pair: dict, scale: float, unit: str, digits: int,
                    verdict: str = "") -> str:
    """``LSTM − GRU: +1.20 points, std 0.40, t = 5.2, 3/3 seeds in favour → holds``."""
    if pair["mean"] is None:
        return f"{first} vs {second}: {pair['reason']}"
    if not verdict:
        verdict = {"a": "holds", "b": "reversed", "noise": f"within the noise ({pair['reason']})"}[pair["outcome"]]
    difference = f"{round(pair['mean'] * scale, digits) + 0.0:+,.{digits}f}{unit}"  # + 0.0: no "-0.00"
    if pair["reason"] == "exact quantity":
        return f"{first} − {second}: {difference} → {verdict} (exact)"
    parts = [difference]
    if pair["std"] is not None:
        parts.append(f"std {pair['std'] * scale:.{digits}f}")
    if pair["t"] is not None:
        parts.append(f"t = {pair['t']:.1f}")
    parts.append(f"{pair['positive']}/{pair['n']} seeds in favour")
    return f"{first} − {second}: {', '.join(parts)} → {verdict}"


def _ranking_evidence(finding: dict) -> str:
    display = finding["display"]
    scale, unit, digits = display["scale"], display["unit"], display["digits"]
    means = []
    for model, d in finding["means"].items():
        if d["mean"] is not None:
            std = f" ± {d['std'] * scale:.{digits}f}" if d["std"] is not None and not display["exact"] else ""
            means.append(f"{model_title(model)} {d['mean'] * scale:,.{digits}f}{std}{unit}")
    lines = ["; ".join(means) + "."] if means else []
    if not finding["pairs"]:
        lines.append("not measured: the claim needs at least two of " + ", ".join(finding["order"]) + ".")
    for pair in finding["pairs"]:
        shown = dict(pair)
        if not display["higher_is_better"] and pair["mean"] is not None:
            # Shown as first − second (negative = the claim holds); "in favour" still counts seeds agreeing.
            shown.update(mean=-pair["mean"], t=None if pair["t"] is None else -pair["t"])
        text = difference_text(model_title(pair["first"]), model_title(pair["second"]), shown, scale, unit, digits)
        lines.append(f"{text}.")
    return "\n".join(lines)


def _levels_evidence(finding: dict) -> str:
    lines = [
        f"{model_title(row['model'])} reported {row['reported'] * 100:.0f}, test {fmt_mean_std(row['test'], 100)} "
        f"({row['gap'] * 100:+.1f} points), final-epoch training {fmt_mean_std(row['train'], 100)}."
        for row in finding["rows"]
    ] or ["not measured: none of lstm, gru, rnn was trained."]
    if finding["seeds"] < finding["min_seeds"]:
        lines.append(f"Fewer than {finding['min_seeds']} seeds: no verdict on levels.")
    return "\n".join(lines)


def _gradient_evidence(finding: dict) -> str:
    lines = [
        f"{model_title(model)} ratio at init {r['init']:.2g}, trained {r['trained']:.2g}."
        for model, r in finding["ratios"].items()
    ]
    if not finding["pairs"]:
        return "\n".join(lines + ["Not measured: needs the RNN and a gated cell."])
    for pair in finding["pairs"]:
        verdict = {
            "holds": "holds",
            "fails": f"fails (needs ≥ {finding['decades']:g} decade(s) more than the RNN)",
        }.get(pair["status"], f"within the noise ({pair['reason']})")
        text = difference_text(model_title(pair["first"]), model_title(pair["second"]), pair, 1.0, " decades", 2,
                               verdict)
        lines.append(f"{text}.")
    return "\n".join(lines)


# -- the insights suite: dropout ablation and hyperparameter grid -----------------------------

# Dropout values from none (warm) to the configured one (the blue of the seed experiment's LSTM).
_DROPOUT_COLORS = ("#D55E00", "#E69F00", "#0072B2")


def _dropout_color(index: int) -> str:
    return _DROPOUT_COLORS[index % len(_DROPOUT_COLORS)]


def figure_dropout_gap(summary: dict) -> bytes:
    """Train − validation accuracy over epochs, one panel per cell, one line per dropout value."""
    dropout = summary["dropout"]
    models = dropout["models"]
    fig, axes = _new_figure(4.2 * len(models) + 0.6, 4.0, ncols=len(models), sharey=True)
    for ax, model in zip(axes, models):
        for k, value in enumerate(dropout["values"]):
            curves = dropout["results"][model][f"{value:g}"]["curves"]
            _band(ax, curves["epoch"], curves["gap"], _dropout_color(k), "-", f"dropout {value:g}", 100)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("epoch")
        _integer_x(ax)
        ax.set_title(model_title(model))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("train − validation accuracy (points)")
    note = _seeds_note({"seeds": dropout["seeds"]})
    fig.suptitle(f"Overfitting over training, with and without dropout ({note})", fontsize=10)
    return _png(fig)


def figure_dropout_scores(summary: dict) -> bytes:
    """Test accuracy and macro-F1 of every cell at every dropout value, bars = mean, dots = seeds."""
    dropout = summary["dropout"]
    models, values = dropout["models"], dropout["values"]
    fig, axes = _new_figure(11, 4.0, ncols=2)
    width = 0.8 / len(values)
    x = np.arange(len(models))
    for ax, measure, label in ((axes[0], "test_accuracy", "test accuracy (%)"),
                               (axes[1], "test_macro_f1", "test macro-F1 (%)")):
        low, high = [], []
        for k, value in enumerate(values):
            stats = [dropout["results"][m][f"{value:g}"][measure] for m in models]
            offset = x + (k - (len(values) - 1) / 2) * width
            ax.bar(offset, [s["mean"] * 100 for s in stats], width, color=_dropout_color(k),
                   label=f"dropout {value:g}")
            for xi, s in zip(offset, stats):
                ax.scatter([xi] * len(s["values"]), [v * 100 for v in s["values"]], color="black", s=8, zorder=3)
                low.append(min(s["values"]) * 100)
                high.append(max(s["values"]) * 100)
        ax.set_xticks(x, [model_title(m) for m in models])
        ax.set_ylabel(label)
        # The differences are a few points: the axis starts near the lowest run, with room for the legend on top.
        bottom = max(0.0, min(low) - 5)
        ax.set_ylim(bottom, max(high) + 0.25 * (max(high) - bottom) + 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncols=len(values), loc="upper center")
    fig.suptitle("Test scores by dropout (bar: mean over seeds; dots: one run each)", fontsize=10)
    return _png(fig)


def figure_hyperparameters(summary: dict) -> bytes:
    """Heat map of validation accuracy over the grid, and the spread of the grid beside seeds and cells."""
    from matplotlib.patches import Rectangle

    grid = summary["hyperparameters"]
    val = np.asarray(grid["val_accuracy"]) * 100
    test = np.asarray(grid["test_accuracy"]) * 100
    fig, axes = _new_figure(11.5, 4.4, ncols=2)
    ax = axes[0]
    image = ax.imshow(val, cmap="viridis", aspect="auto")
    for i in range(val.shape[0]):
        for j in range(val.shape[1]):
            bright = val[i, j] > val.min() + 0.6 * (val.max() - val.min())
            ax.text(j, i, f"{val[i, j]:.1f}\n({test[i, j]:.1f})", ha="center", va="center", fontsize=8,
                    color="black" if bright else "white")
    centre = (grid["lrs"].index(grid["configuration"]["lr"]),
              grid["hidden_sizes"].index(grid["configuration"]["hidden_size"]))
    ax.add_patch(Rectangle((centre[1] - 0.5, centre[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(grid["hidden_sizes"])), [str(h) for h in grid["hidden_sizes"]])
    ax.set_yticks(range(len(grid["lrs"])), [f"{lr:g}" for lr in grid["lrs"]])
    ax.set_xlabel("hidden size")
    ax.set_ylabel("learning rate")
    seeds = len(grid["seeds"])
    ax.set_title(f"{model_title(grid['model'])}: best validation accuracy (%), test in brackets\n"
                 f"mean over {seeds} seed(s); red = the configuration", fontsize=9)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    ax = axes[1]
    groups = [(f"{model_title(grid['model'])} grid\n({val.size} points)", list(val.ravel()))]
    repeats = [r["best_val_accuracy"] * 100 for r in summary["insights_runs"]
               if r["model"] == grid["model"] and r["lr"] == grid["configuration"]["lr"]
               and r["hidden_size"] == grid["configuration"]["hidden_size"]
               and r["dropout"] == summary["dropout"]["default"]]
    groups.append((f"{model_title(grid['model'])} seeds at\nthe configuration", repeats))
    cells = {m: c["val_accuracy"]["mean"] * 100 for m, c in grid["cells"].items()
             if c["val_accuracy"]["mean"] is not None}
    if len(cells) > 1:
        groups.append(("cells at the\nconfiguration", list(cells.values())))
    for k, (label, values) in enumerate(groups):
        ax.scatter([k] * len(values), values, s=36, color="#0072B2" if k < 2 else "#009E73", edgecolor="black",
                   linewidth=0.5, zorder=3)
        if values:
            ax.vlines(k, min(values), max(values), color="grey", linewidth=6, alpha=0.3)
            ax.annotate(f"range {max(values) - min(values):.1f}", (k, max(values)), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8)
    if len(cells) > 1:
        for model, value in cells.items():
            ax.annotate(model_title(model), (len(groups) - 1, value), textcoords="offset points", xytext=(8, -3),
                        fontsize=8)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.margins(y=0.15)
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title("Spread: tuning, reseeding, changing the cell", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def insights_figures(summary: dict) -> dict[str, bytes]:
    return {
        "dropout-gap": figure_dropout_gap(summary),
        "dropout-scores": figure_dropout_scores(summary),
        "hyperparameters": figure_hyperparameters(summary),
    }


def insights_blocks(summary: dict) -> list[tuple]:
    dropout, grid = summary["dropout"], summary["hyperparameters"]
    findings = {f["key"]: f for f in summary["findings"]}
    values = ", ".join(f"{v:g}" for v in dropout["values"])
    n_seeds = len(dropout["seeds"])
    blocks: list[tuple] = [
        ("h2", "Dropout: does it improve generalisation?"),
        (
            "p",
            f"Each cell is trained with dropout {values} on the same {n_seeds} seed(s) and split, everything else as "
            f"configured; the runs with dropout {dropout['default']:g} are the configuration itself. The train "
            "accuracy at the kept weights is measured after training, dropout off, on the training names: the "
            "train − test gap it leaves is the overfitting dropout is meant to cure.",
        ),
        _table(
            ["Cell", "Dropout", "Test accuracy (%)", "Test macro-F1 (%)", "Best val. acc. (%)",
             "Train acc. at kept weights (%)", "Train − test gap (points)"],
            [
                [model_title(m), f"{v:g}"]
                + [fmt_mean_std(r[k], 100) for k in ("test_accuracy", "test_macro_f1", "best_val_accuracy",
                                                     "kept_train_accuracy", "kept_gap")]
                for m in dropout["models"]
                for v in dropout["values"]
                for r in [dropout["results"][m][f"{v:g}"]]
            ],
        ),
        ("p", f"Mean ± sample standard deviation over {n_seeds} seed(s)."),
        ("figure", "dropout-gap",
         "Train − validation accuracy after each epoch. Train accuracy here is the running accuracy during the "
         "epoch, with dropout on, so it understates the gap of the runs with dropout; the table's gap at the kept "
         "weights is measured with dropout off."),
        ("figure", "dropout-scores", "Test accuracy and macro-F1 by dropout."),
        ("h2", "Hyperparameters: how much does tuning move accuracy?"),
        (
            "p",
            f"The {model_title(grid['model'])} (the fastest cell compared) is trained over learning rate "
            f"{', '.join(f'{lr:g}' for lr in grid['lrs'])} × hidden size "
            f"{', '.join(str(h) for h in grid['hidden_sizes'])} on {len(grid['seeds'])} seed(s), everything else as "
            "configured. Points are chosen on validation accuracy (the weights of the best epoch); test accuracy is "
            "shown beside it, never used to choose.",
        ),
        ("figure", "hyperparameters",
         "Left: best validation accuracy over the grid (test accuracy in brackets). Right: how far apart the grid "
         "points are, against repeated seeds of the configuration and against the cells at the configuration."),
        _table(
            ["Learning rate \\ hidden size"] + [str(h) for h in grid["hidden_sizes"]],
            [
                [f"{lr:g}"] + [f"{grid['val_accuracy'][i][j] * 100:.2f} ({grid['test_accuracy'][i][j] * 100:.2f})"
                               for j in range(len(grid["hidden_sizes"]))]
                for i, lr in enumerate(grid["lrs"])
            ],
        ),
        ("p", "Validation accuracy (%) of each grid point, test accuracy in brackets, mean over seeds."),
    ]
    if "hyperparameters" in findings:
        blocks.append(("p", _hyperparameters_evidence(findings["hyperparameters"]).replace("\n", " ")))
    blocks += [
        ("h3", "Every insights run"),
        _table(
            ["Run folder", "Cell", "Seed", "Dropout", "Learning rate", "Hidden size", "Test accuracy (%)",
             "Test macro-F1 (%)", "Best val. acc. (%)"],
            [
                [r["run_dir"], model_title(r["model"]), r["seed"], f"{r['dropout']:g}", f"{r['lr']:g}",
                 r["hidden_size"], pct(r["test_accuracy"]), pct(r["test_macro_f1"]), pct(r["best_val_accuracy"])]
                for r in summary["insights_runs"]
            ],
        ),
    ]
    return blocks


def insights_rules(summary: dict) -> list[str]:
    thresholds = summary["thresholds"]
    return [
        "Dropout: for each cell, the configured dropout against dropout 0, run for run, on test accuracy and on "
        "macro-F1, by the rule above. Supported: every comparison clear in favour of dropout. Not supported: one "
        "clearly against. Inconclusive: anything else. The value between is shown, not judged.",
        f"Hyperparameters: the spread across the grid (standard deviation of the grid points' mean validation "
        f"accuracy) over the seed noise of one point's mean (pooled seed std / √seeds). Supported: at least "
        f"{thresholds['tuning_noise_ratio']:g}× the seed noise. Not supported: no more than the seed noise (1×). "
        "Inconclusive: between, or when the seed noise is not measured (one seed).",
    ]


def _dropout_evidence(finding: dict) -> str:
    lines = []
    default = finding["values"][-1]
    for model, results in finding["results"].items():
        def scores(measure: str) -> str:
            return ", ".join(f"{fmt_mean_std(results[f'{v:g}'][measure], 100)} ({v:g})" for v in finding["values"])

        lines.append(f"{model_title(model)}: accuracy {scores('test_accuracy')}; macro-F1 {scores('test_macro_f1')}; "
                     f"train − test gap at the kept weights {scores('kept_gap')} points.")
        for pair in (p for p in finding["pairs"] if p["model"] == model):
            measure = "accuracy" if pair["measure"] == "test_accuracy" else "macro-F1"
            text = difference_text(f"{model_title(model)} {measure}, dropout {default:g}", "dropout 0", pair, 100,
                                   " points", 2)
            lines.append(f"{text}.")
    return "\n".join(lines)


def _hyperparameters_evidence(finding: dict) -> str:
    best, worst, centre = finding["best"], finding["worst"], finding["centre"]
    noise = finding["seed_noise"]

    def point(p: dict) -> str:
        return f"{p['val_accuracy'] * 100:.2f} (lr {p['lr']:g}, hidden {p['hidden_size']})"

    lines = [
        f"{model_title(finding['model'])}, {len(finding['lrs'])} learning rates × {len(finding['hidden_sizes'])} "
        f"hidden sizes, {finding['grid_seeds']} seed(s) each: validation accuracy from {point(worst)} to "
        f"{point(best)}, a range of {finding['spread']['range'] * 100:.2f} points.",
    ]
    if finding["ratio"] is None:
        lines.append("Seed noise not measured (one seed per point and no repeated configuration): no verdict.")
    else:
        lines.append(
            f"Spread across the grid {finding['spread']['std'] * 100:.2f} points (std of the point means) against "
            f"a seed noise of {noise['of_mean'] * 100:.2f} points per point (seed std {noise['std'] * 100:.2f}): "
            f"ratio {finding['ratio']:.1f}, needs ≥ {finding['threshold']:g}."
        )
    gain = finding["tuning_gain"]
    lines.append(
        f"Tuning from the configuration {point(centre)} to the best point: {gain['val_accuracy'] * 100:+.2f} "
        f"points on validation, {gain['test_accuracy'] * 100:+.2f} on test."
    )
    cells, cell_range = finding["cells"]["val_accuracy"], finding["cell_range"]
    if cell_range["val_accuracy"] is not None:
        shown = ", ".join(f"{model_title(m)} {v * 100:.2f}" for m, v in sorted(cells.items(), key=lambda c: c[1]))
        lines.append(
            f"Changing the cell at the configuration moves validation accuracy by {cell_range['val_accuracy'] * 100:.2f} "
            f"points ({shown}; test {cell_range['test_accuracy'] * 100:.2f} points), against "
            f"{finding['spread']['range'] * 100:.2f} for the whole grid and {gain['val_accuracy'] * 100:+.2f} for "
            "tuning from the configuration."
        )
    return "\n".join(lines)


_EVIDENCE = {
    "ranking": _ranking_evidence,
    "levels": _levels_evidence,
    "gradient": _gradient_evidence,
    "dropout": _dropout_evidence,
    "hyperparameters": _hyperparameters_evidence,
}


# -- the accuracy suite: the best recipes beside the three cells (leaderboard.py) -------------


def _fmt_stats(stats: dict | None, scale: float = 100.0, digits: int = 2) -> str:
    if not stats:
        return "n/a"
    text = f"{stats['mean'] * scale:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std'] * scale:.{digits}f}"
    return text


def accuracy_figures(summary: dict) -> dict[str, bytes]:
    """The reliability diagram of the suite's best ensemble (empty without a suite)."""
    section = summary.get("accuracy")
    if not section:
        return {}
    fig, (ax,) = _new_figure(5.2, 4.4)
    ax.plot([0, 1], [0, 1], color="#888888", linestyle=":", label="perfectly calibrated")
    reliability = section["reliability"]
    for key, color, label in (
        ("before", "#D55E00", "before (T = 1)"),
        ("after", "#0072B2", f"after (T = {reliability['temperature']:.2f})"),
    ):
        bins = [b for b in reliability[key] if b["count"]]
        ax.plot(
            [b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", color=color, label=label
        )
    ax.set_xlabel("confidence of the top language (15 bins)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability: {reliability['title']} (test split)")
    ax.legend(loc="upper left", fontsize=8)
    return {"reliability": _png(fig)}


def accuracy_blocks(summary: dict) -> list[tuple]:
    """The report blocks of the accuracy section (none without a suite)."""
    section = summary.get("accuracy")
    if not section:
        return []
    rows = []
    calibration = section.get("seed_cells_calibration", {})
    for model in summary["models"] if "results" in summary else []:
        result = summary["results"][model]
        cal = calibration.get(model, {})
        rows.append(
            [
                f"{model_title(model)} (seed experiment)",
                _fmt_stats(result["test_accuracy"]),
                _fmt_stats(result["test_macro_f1"]),
                f"{_fmt_stats(cal.get('ece_before'), digits=1)} → {_fmt_stats(cal.get('ece_after'), digits=1)}",
                _fmt_stats(cal.get("coverage"), digits=1),
                _fmt_stats(cal.get("mean_set_size"), scale=1.0),
            ]
        )
    for row in section["rows"].values():
        rows.append(
            [
                row["title"] + (f" ({row['note']})" if row["note"] else ""),
                _fmt_stats(row["test_accuracy"]),
                _fmt_stats(row["test_macro_f1"]),
                f"{_fmt_stats(row.get('ece_before'), digits=1)} → {_fmt_stats(row.get('ece_after'), digits=1)}",
                _fmt_stats(row.get("coverage"), digits=1),
                _fmt_stats(row.get("mean_set_size"), scale=1.0),
            ]
        )
    seeds = ", ".join(str(s) for s in section["seeds"])
    return [
        ("h2", "Accuracy: the best recipes beside the three cells"),
        (
            "p",
            f"Trained in the same run, on the same split and seeds ({seeds}): the character n-gram baseline, the best "
            f"single model found ({section['recipe']['single']}) and the best ensemble "
            f"({section['recipe']['ensemble']}). "
            "Recipes were chosen on the validation split only (docs/accuracy.md). Calibration: a temperature fitted on "
            "validation; ECE (15 equal-width bins, in points) on test before → after; 90 % conformal sets "
            "(split-conformal on validation): their coverage of test names and mean size.",
        ),
        (
            "table",
            ["model", "test accuracy %", "macro-F1 %", "ECE % before → after", "90 % set coverage %",
             "mean set size"],  # fmt: skip
            rows,
        ),
        ("figure", "reliability", "Reliability diagram of the best ensemble on the test split, before and after "
         "temperature scaling: points on the diagonal are calibrated."),  # fmt: skip
        ("p", f"The suite took {section['seconds']:.0f} s."),
    ]


def accuracy_rules(summary: dict) -> list[str]:
    return [
        "Accuracy suite: recipes were chosen on the validation split only; the n-gram baseline is deterministic "
        "(fitted once, no seed); ECE uses 15 equal-width confidence bins; coverage is that of split-conformal "
        "sets at 90 %, calibrated on validation and counted on test."
    ]


@dataclass(frozen=True)
class Section:
    """How the report shows one suite of ``namelab compare``: its title, figures, blocks and judging rules."""

    title: str
    figures: Callable[[dict], dict[str, bytes]]
    blocks: Callable[[dict], list[tuple]]
    rules: Callable[[dict], list[str]]


SECTIONS = {
    "seed": Section("RNN vs LSTM vs GRU on surnames", seed_figures, seed_blocks, seed_rules),
    "insights": Section("dropout and hyperparameters, measured", insights_figures, insights_blocks, insights_rules),
    "accuracy": Section("the most accurate classifier, calibrated", accuracy_figures, accuracy_blocks, accuracy_rules),
}


def _ratio_text(stats: dict) -> str:
    if stats["mean"] is None:
        return "n/a"
    if stats["std"] is None:
        return f"{stats['mean']:.2g}"
    return f"{stats['mean']:.2g} ({stats['min']:.2g}–{stats['max']:.2g})"


# -- rendering ---------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")  # GitHub-style tables take <br> for a line break


def render_markdown(blocks: list[tuple], figure_paths: dict[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{block[1]}]({figure_paths[block[1]]})\n\n*{block[2]}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .55em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.verdict { font-weight: 600; padding: .1em .45em; border-radius: .3em; color: white; white-space: nowrap; }
"""


def _looks_numeric(text: str) -> bool:
    """Right-align cells that start with a number ("83.12 ± 0.45", "1,234", "2.2e-03 (…)")."""
    first = text.split()[0].replace(",", "") if text.split() else ""
    try:
        float(first)
        return True
    except ValueError:
        return False


def render_html(blocks: list[tuple], figure_png: dict[str, bytes]) -> str:
    esc = html.escape
    body: list[str] = []
    title = next((b[1] for b in blocks if b[0] == "h1"), "namelab report")
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            cells = []
            for row in rows:
                tds = []
                for cell in row:
                    if "\n" in cell:  # evidence: one line per comparison
                        tds.append("<td>" + "<br>".join(esc(line) for line in cell.split("\n")) + "</td>")
                    elif cell in VERDICT_COLORS:
                        style = f"background:{VERDICT_COLORS[cell]}"
                        tds.append(f'<td><span class="verdict" style="{style}">{esc(cell)}</span></td>')
                    elif _looks_numeric(cell):
                        tds.append(f'<td class="num">{esc(cell)}</td>')
                    else:
                        tds.append(f"<td>{esc(cell)}</td>")
                cells.append("<tr>" + "".join(tds) + "</tr>")
            head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
            body.append(f"<table><thead>{head}</thead><tbody>{''.join(cells)}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(figure_png[block[1]]).decode("ascii")
            body.append(
                f'<figure id="fig-{esc(block[1])}"><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block[2])}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(summary: dict, out_dir: Path) -> dict:
    """Write ``figures/*.png``, ``report.md`` and ``report.html`` under ``out_dir``; returns their relative paths."""
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("*.png"):  # figures of models dropped since the last compare
        stale.unlink()
    figures = make_figures(summary)
    paths = {key: f"figures/{key}.png" for key in figures}
    for key, png in figures.items():
        atomic_write_bytes(out_dir / paths[key], png)
    blocks = report_blocks(summary)
    atomic_write_bytes(out_dir / "report.md", render_markdown(blocks, paths).encode("utf-8"))
    atomic_write_bytes(out_dir / "report.html", render_html(blocks, figures).encode("utf-8"))
    return {"figures": paths, "markdown": "report.md", "html": "report.html"}
