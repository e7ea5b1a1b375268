"""The accuracy suite's part of the report: the best recipes beside the three cells, calibrated.

    accuracy_figures(summary); accuracy_blocks(summary)
"""

from __future__ import annotations

from .common import fmt_stats, model_title, new_figure, png_bytes


def accuracy_figures(summary: dict) -> dict[str, bytes]:
    """The reliability diagram of the suite's best ensemble (empty without a suite)."""
    section = summary.get("accuracy")
    if not section:
        return {}
    fig, (ax,) = new_figure(5.2, 4.4)
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
    return {"reliability": png_bytes(fig)}


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
                fmt_stats(result["test_accuracy"]),
                fmt_stats(result["test_macro_f1"]),
                f"{fmt_stats(cal.get('ece_before'), digits=1)} → {fmt_stats(cal.get('ece_after'), digits=1)}",
                fmt_stats(cal.get("coverage"), digits=1),
                fmt_stats(cal.get("mean_set_size"), scale=1.0),
            ]
        )
    for row in section["rows"].values():
        rows.append(
            [
                row["title"] + (f" ({row['note']})" if row["note"] else ""),
                fmt_stats(row["test_accuracy"]),
                fmt_stats(row["test_macro_f1"]),
                f"{fmt_stats(row.get('ece_before'), digits=1)} → {fmt_stats(row.get('ece_after'), digits=1)}",
                fmt_stats(row.get("coverage"), digits=1),
                fmt_stats(row.get("mean_set_size"), scale=1.0),
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
