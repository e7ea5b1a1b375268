"""Figures and the HTML/Markdown report of a compare run, drawn from its summary alone.

    summary = json.loads(Path("reports/compare/summary.json").read_text())
    write_report(summary, Path("reports/compare"))   # figures/*.png, report.md, report.html

Figures are drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot, so
no global figure state). ``report.html`` is one self-contained file: its images are
the same PNG bytes as ``figures/*.png``, embedded as base64 data URIs, with inline
CSS and no script, so it opens offline. ``report.md`` links the PNG files. Both are
rendered from one list of blocks, so they always say the same thing.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Iterable

import numpy as np

from .cells import CELLS
from .leaderboard import accuracy_blocks, accuracy_figures

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
    """``"83.12 ± 0.45"`` from a :func:`namelab.compare.describe` dict (no ± with one value)."""
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
    figures = {"loss": figure_curves(summary, "loss"), "accuracy": figure_curves(summary, "accuracy")}
    for model in summary["models"]:
        figures[f"curves-{model}"] = figure_model_curves(summary, model)
    for model in summary["models"]:
        figures[f"confusion-{model}"] = figure_confusion(summary, model)
    figures["f1"] = figure_f1(summary)
    figures["gradient-flow"] = figure_gradient(summary)
    figures["cost"] = figure_cost(summary)
    figures.update(accuracy_figures(summary))
    return figures


# -- the document as blocks ---------------------------------------------------------------
# ("h1"|"h2"|"h3"|"p", text) | ("table", headers, rows) | ("figure", key, caption) | ("list", items)


def _table(headers: list[str], rows: Iterable[Iterable]) -> tuple:
    return ("table", headers, [[str(cell) for cell in row] for row in rows])


def report_blocks(summary: dict) -> list[tuple]:
    models = summary["models"]
    results = summary["results"]
    setup = summary["setup"]
    config = setup["config"]
    thresholds = summary["thresholds"]
    n_seeds = len(summary["seeds"])
    titles = ", ".join(model_title(m) for m in models)
    blocks: list[tuple] = [
        ("h1", "namelab: RNN vs LSTM vs GRU on surnames"),
        (
            "p",
            f"{titles}, each trained on {n_seeds} seed(s) ({', '.join(str(s) for s in summary['seeds'])}) on the same "
            f"name-disjoint split (split seed {config['split_seed']}) for {config['epochs']} epochs, hidden size "
            f"{config['hidden_size']}, {config['impl']} engine, on {setup['device']}. Test accuracy is measured on "
            f"{setup['split']['n_test']} names no model saw during training; weights are those of the epoch with the "
            f"best validation accuracy. Total time {setup['total_seconds']:.0f} s."
            + (" This is a --quick smoke run: too short to judge the findings." if summary["quick"] else ""),
        ),
        ("h2", "Findings of the original report, checked"),
        (
            "p",
            "The original figures came from the training accuracy of a single run. Here every claim is checked "
            "against the measured numbers; the rules are given under “How findings are judged”.",
        ),
        _table(
            ["Original claim", "Measured by", "Verdict", "Evidence"],
            [[f["claim"], f["measure"], f["verdict"], f["evidence"]] for f in summary["findings"]],
        ),
        ("h2", "Results"),
        _table(
            [
                "Model",
                "Test accuracy (%)",
                "Test macro-F1 (%)",
                "Parameters",
                "Seconds / epoch",
                f"Epochs to {thresholds['convergence_fraction']:.0%} of final val. acc.",
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
    blocks += [
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
        ("p", f"Precision (P), recall (R) and F1 in %, mean over {n_seeds} seed(s)."),
        ("h2", "Most confused languages"),
    ]
    for m in models:
        pairs = results[m]["confused_pairs"]
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
    probe = setup["probe"]
    distances = probe["distances"]
    blocks += [
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
                for m in models
            ],
        ),
        ("p", "Ratio = gradient norm at the farthest step / at the last step, per seed (mean, min–max over seeds)."),
        ("h2", "Cost"),
        ("figure", "cost", "Parameters, seconds per epoch and test accuracy against training time."),
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
        ("h3", "Hyperparameters (the same for every run; model and seed vary)"),
        _table(["Setting", "Value"], [[k, v] for k, v in config.items()]),
        ("h3", "Software and hardware"),
        _table(
            ["Item", "Value"],
            [[k, v] for k, v in setup["versions"].items()]
            + [["device", setup["device"]], ["cpu", setup["cpu"]]]
            + ([["gpu", setup["gpu"]]] if setup.get("gpu") else [])
            + [["total time (s)", f"{setup['total_seconds']:.0f}"]],
        ),
        ("h2", "How findings are judged"),
        (
            "list",
            [
                f"Rankings compare models run for run: the runs with the same seed share the split and the budget, so "
                f"each seed gives one paired difference. A difference is clear when every seed agrees on its sign, "
                f"there are at least {thresholds['min_seeds']} seeds, and the mean difference is at least "
                f"{thresholds['noise_standard_errors']:g} standard errors (std / √n); otherwise it is within the "
                "noise. "
                "This is a rule of thumb for a handful of seeds, not a significance test.",
                "Supported: every pair in the claimed order is clear in the claimed direction. Not supported: at least "
                "one pair is clearly reversed. Inconclusive: anything else.",
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
            ],
        ),
    ]
    blocks += accuracy_blocks(summary)
    return blocks


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
    from .checkpoint import atomic_write_bytes

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
