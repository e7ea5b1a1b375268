"""The insights suite's part of the report: the dropout ablation and the hyperparameter grid.

    insights_figures(summary); insights_blocks(summary)
"""

from __future__ import annotations

import numpy as np

from .common import (
    band,
    difference_text,
    fmt_mean_std,
    integer_x,
    model_title,
    new_figure,
    pct,
    png_bytes,
    seeds_note,
    table,
)

# Dropout values from none (warm) to the configured one (the blue of the seed experiment's LSTM).
_DROPOUT_COLORS = ("#D55E00", "#E69F00", "#0072B2")


def _dropout_color(index: int) -> str:
    return _DROPOUT_COLORS[index % len(_DROPOUT_COLORS)]


def figure_dropout_gap(summary: dict) -> bytes:
    """Train − validation accuracy over epochs, one panel per cell, one line per dropout value."""
    dropout = summary["dropout"]
    models = dropout["models"]
    fig, axes = new_figure(4.2 * len(models) + 0.6, 4.0, ncols=len(models), sharey=True)
    for ax, model in zip(axes, models):
        for k, value in enumerate(dropout["values"]):
            curves = dropout["results"][model][f"{value:g}"]["curves"]
            band(ax, curves["epoch"], curves["gap"], _dropout_color(k), "-", f"dropout {value:g}", 100)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("epoch")
        integer_x(ax)
        ax.set_title(model_title(model))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("train − validation accuracy (points)")
    note = seeds_note({"seeds": dropout["seeds"]})
    fig.suptitle(f"Overfitting over training, with and without dropout ({note})", fontsize=10)
    return png_bytes(fig)


def figure_dropout_scores(summary: dict) -> bytes:
    """Test accuracy and macro-F1 of every cell at every dropout value, bars = mean, dots = seeds."""
    dropout = summary["dropout"]
    models, values = dropout["models"], dropout["values"]
    fig, axes = new_figure(11, 4.0, ncols=2)
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
    return png_bytes(fig)


def figure_hyperparameters(summary: dict) -> bytes:
    """Heat map of validation accuracy over the grid, and the spread of the grid beside seeds and cells."""
    from matplotlib.patches import Rectangle

    grid = summary["hyperparameters"]
    val = np.asarray(grid["val_accuracy"]) * 100
    test = np.asarray(grid["test_accuracy"]) * 100
    fig, axes = new_figure(11.5, 4.4, ncols=2)
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
    return png_bytes(fig)


def insights_figures(summary: dict) -> dict[str, bytes]:
    return {
        "dropout-gap": figure_dropout_gap(summary),
        "dropout-scores": figure_dropout_scores(summary),
        "hyperparameters": figure_hyperparameters(summary),
    }


def insights_blocks(summary: dict) -> list[tuple]:
    findings = {f["key"]: f for f in summary["findings"]}
    blocks = [*_dropout_blocks(summary["dropout"]), *_grid_blocks(summary["hyperparameters"])]
    if "hyperparameters" in findings:
        blocks.append(("p", hyperparameters_evidence(findings["hyperparameters"]).replace("\n", " ")))
    blocks += [
        ("h3", "Every insights run"),
        table(
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


def _dropout_blocks(dropout: dict) -> list[tuple]:
    """The dropout ablation: how it was run, its table per cell and dropout, and its two figures."""
    values = ", ".join(f"{v:g}" for v in dropout["values"])
    n_seeds = len(dropout["seeds"])
    return [
        ("h2", "Dropout: does it improve generalisation?"),
        (
            "p",
            f"Each cell is trained with dropout {values} on the same {n_seeds} seed(s) and split, everything else as "
            f"configured; the runs with dropout {dropout['default']:g} are the configuration itself. The train "
            "accuracy at the kept weights is measured after training, dropout off, on the training names: the "
            "train − test gap it leaves is the overfitting dropout is meant to cure.",
        ),
        table(
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
    ]


def _grid_blocks(grid: dict) -> list[tuple]:
    """The hyperparameter grid: how it was run, its figure and its table of grid points."""
    return [
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
        table(
            ["Learning rate \\ hidden size"] + [str(h) for h in grid["hidden_sizes"]],
            [
                [f"{lr:g}"] + [f"{grid['val_accuracy'][i][j] * 100:.2f} ({grid['test_accuracy'][i][j] * 100:.2f})"
                               for j in range(len(grid["hidden_sizes"]))]
                for i, lr in enumerate(grid["lrs"])
            ],
        ),
        ("p", "Validation accuracy (%) of each grid point, test accuracy in brackets, mean over seeds."),
    ]


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


def dropout_evidence(finding: dict) -> str:
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


def hyperparameters_evidence(finding: dict) -> str:
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
