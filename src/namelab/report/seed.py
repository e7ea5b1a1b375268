"""The seed suite's part of the report: curves, confusion matrices, F1, gradient flow, cost, and the words for its findings.

    seed_figures(summary)   # {name: PNG bytes}
    seed_blocks(summary)    # the document's blocks
"""

from __future__ import annotations

import numpy as np

from .common import (
    band,
    difference_text,
    fmt_mean_std,
    integer_x,
    model_color,
    model_title,
    new_figure,
    pct,
    png_bytes,
    ratio_text,
    seeds_note,
    table,
)


def figure_curves(summary: dict, field: str) -> bytes:
    """Train (dashed) and validation (solid) ``field`` of every model on one plot."""
    fig, (ax,) = new_figure(7.5, 4.6)
    scale = 100 if field == "accuracy" else 1
    for model in summary["models"]:
        curves = summary["results"][model]["curves"]
        color = model_color(model, summary["models"])
        band(ax, curves["epoch"], curves[f"val_{field}"], color, "-", f"{model_title(model)} validation", scale)
        band(ax, curves["epoch"], curves[f"train_{field}"], color, "--", f"{model_title(model)} train", scale)
    ax.set_xlabel("epoch")
    integer_x(ax)
    ax.set_ylabel("accuracy (%)" if field == "accuracy" else "loss (negative log-likelihood)")
    ax.set_title(f"{'Accuracy' if field == 'accuracy' else 'Loss'} of every model ({seeds_note(summary)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return png_bytes(fig)


def figure_model_curves(summary: dict, model: str) -> bytes:
    """One model's loss and accuracy, train and validation."""
    fig, axes = new_figure(10, 4, ncols=2)
    curves = summary["results"][model]["curves"]
    color = model_color(model, summary["models"])
    for ax, field, scale, ylabel in (
        (axes[0], "loss", 1, "loss (negative log-likelihood)"),
        (axes[1], "accuracy", 100, "accuracy (%)"),
    ):
        band(ax, curves["epoch"], curves[f"train_{field}"], color, "--", "train", scale)
        band(ax, curves["epoch"], curves[f"val_{field}"], color, "-", "validation", scale)
        ax.set_xlabel("epoch")
        integer_x(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(f"{model_title(model)}: training curves ({seeds_note(summary)})")
    return png_bytes(fig)


def figure_confusion(summary: dict, model: str) -> bytes:
    """Row-normalized test confusion matrix, pooled over seeds, every non-zero count written in its cell."""
    labels = summary["labels"]
    counts = np.asarray(summary["results"][model]["confusion"], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.5 * len(labels) + 2.5)
    fig, (ax,) = new_figure(size + 1.2, size)
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
    return png_bytes(fig)


def figure_f1(summary: dict) -> bytes:
    """Per-class F1 of every model, side by side, error bars = std over seeds."""
    labels = summary["labels"]
    models = summary["models"]
    support = summary["setup"]["test_counts"]
    fig, (ax,) = new_figure(max(7.0, 0.65 * len(labels) + 2), 4.6)
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
    ax.set_title(f"Per-language F1 (test names per language in brackets; {seeds_note(summary).split(',')[0]})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncols=len(models), loc="upper center")
    return png_bytes(fig)


def figure_gradient(summary: dict) -> bytes:
    """Mean ‖dL/dh_t‖ against steps before the end, at initialization and after training, log scale."""
    fig, axes = new_figure(10, 4.2, ncols=2, sharey=True)
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
        integer_x(ax)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    axes[0].set_ylabel("mean ‖dL / dh_t‖")
    shortest = min(len(name) for name in probe["names"])
    fig.suptitle(
        f"Gradient reaching each step: {probe['n_names']} longest test names (≥ {shortest} characters), "
        f"{seeds_note(summary)}",
        fontsize=10,
    )
    return png_bytes(fig)


def figure_cost(summary: dict) -> bytes:
    """Parameters, seconds per epoch, and test accuracy against training time."""
    fig, axes = new_figure(12, 3.9, ncols=3)
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
    return png_bytes(fig)


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


def seed_blocks(summary: dict) -> list[tuple]:
    return [
        *results_blocks(summary),
        *per_language_blocks(summary),
        *confusion_blocks(summary),
        *gradient_blocks(summary),
        *cost_blocks(summary),
        *runs_blocks(summary),
    ]


def results_blocks(summary: dict) -> list[tuple]:
    models, results = summary["models"], summary["results"]
    n_seeds = len(summary["seeds"])
    blocks = [
        ("h2", "Results"),
        table(
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
        table(
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
            table(
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
        table(
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
                        ratio_text(summary["gradient"][m][f"ratio_{stage}"]),
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
        table(
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


def ranking_evidence(finding: dict) -> str:
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


def levels_evidence(finding: dict) -> str:
    lines = [
        f"{model_title(row['model'])} reported {row['reported'] * 100:.0f}, test {fmt_mean_std(row['test'], 100)} "
        f"({row['gap'] * 100:+.1f} points), final-epoch training {fmt_mean_std(row['train'], 100)}."
        for row in finding["rows"]
    ] or ["not measured: none of lstm, gru, rnn was trained."]
    if finding["seeds"] < finding["min_seeds"]:
        lines.append(f"Fewer than {finding['min_seeds']} seeds: no verdict on levels.")
    return "\n".join(lines)


def gradient_evidence(finding: dict) -> str:
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
