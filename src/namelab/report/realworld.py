"""The realworld suite's part of the report: real surnames, the prior, and "none of these".

    realworld_figures(summary)   # {"realworld-roc": PNG bytes}
    realworld_blocks(summary)    # tables per model and prior, per language, the targets, advice

Everything shown is read from ``summary["realworld"]`` (experiment/realworld.py).
"""

from __future__ import annotations

from .common import fmt_stats, new_figure, pct, png_bytes, table

PRIOR_TITLES = {
    "train": "train (names folder's shares)",
    "uniform": "uniform",
    "estimate": "estimate (EM over all benchmark names)",
    "true": "true shares (upper bound)",
}


def realworld_figures(summary: dict) -> dict[str, bytes]:
    """The ROC curve of the unknown-language score and of the top-probability baseline (empty without a scorer)."""
    section = summary.get("realworld")
    if not section or not section.get("unknown"):
        return {}
    unknown = section["unknown"]
    title = section["models"][section["focus"]]["title"]
    fig, (ax,) = new_figure(5.2, 4.6)
    ax.plot([0, 1], [0, 1], color="#888888", linestyle=":", label="chance (AUROC 0.50)")
    ax.plot(
        unknown["roc"]["fpr"],
        unknown["roc"]["tpr"],
        color="#0072B2",
        linewidth=2,
        label=f"unknown-language score (AUROC {unknown['auroc']:.2f})",
    )
    ax.plot(
        unknown["baseline_roc"]["fpr"],
        unknown["baseline_roc"]["tpr"],
        color="#D55E00",
        linestyle="--",
        label=f"1 − top probability, {title} (AUROC {unknown['baseline_auroc']:.2f})",
    )
    ax.plot(
        [unknown["flagged_in_domain"]],
        [unknown["caught_out_of_domain"]],
        "o",
        color="#000000",
        label=f"default threshold ({pct(unknown['false_alarm'], 0)} % of validation names)",
    )
    ax.set_xlabel("in-domain benchmark names flagged (false-alarm rate)")
    ax.set_ylabel("out-of-domain names caught (true-positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Unknown language on real names")
    ax.legend(loc="lower right", fontsize=7)
    return {"realworld-roc": png_bytes(fig)}


def _cell(stats: dict | None) -> str:
    return fmt_stats(stats) if stats and stats.get("mean") is not None else "n/a"


def _gap(target: dict) -> str:
    if target["measured"] is None:
        return "not measured"
    word = "met" if target["met"] else "missed"
    return f"{word} ({target['gap'] * 100:+.2f} points)"


def advice(section: dict) -> str:
    """What a user should expect on real names and which --prior to pick, from the section's numbers."""
    focus = section["models"][section["focus"]]
    priors = focus["priors"]
    recommended = section["recommended_prior"]

    def acc(prior: str) -> str:
        return pct(priors[prior]["accuracy"]["mean"], 1)

    def f1(prior: str) -> str:
        return pct(priors[prior]["macro_f1"]["mean"], 1)

    choices = ("train", "uniform", "estimate")
    best = max(choices, key=lambda p: priors[p]["accuracy"]["mean"] + priors[p]["macro_f1"]["mean"])
    text = (
        f"On real surnames of the known languages, {focus['title']} is right for {acc('train')} % of names with "
        f"today's default (--prior train, macro-F1 {f1('train')} %), against {pct(focus['test_accuracy']['mean'], 1)} % "
        f"(macro-F1 {pct(focus['test_macro_f1']['mean'], 1)} %) on the names folder's own test split. On names of unknown make-up, --prior uniform gave {acc('uniform')} % (macro-F1 {f1('uniform')} %) "
        f"and --prior estimate {acc('estimate')} % (macro-F1 {f1('estimate')} %); knowing the true shares, which no "
        f"user does, would give {acc('true')} % (macro-F1 {f1('true')} %). "
    )
    if best == recommended:
        text += f"Pick --prior {recommended} when the make-up of the names is unknown: it scored highest of the three here. "
    else:
        text += (
            f"--prior {best} scored highest here ({acc(best)} % against {acc(recommended)} % for --prior {recommended}, "
            f"the README's choice for an unknown make-up); estimate needs a batch of a few hundred names from one "
            "population. "
        )
    text += "Use --prior train only for names drawn like the names folder (mostly Russian and English)."
    unknown = section.get("unknown")
    if unknown:
        text += (
            f" The unknown-language flag (threshold: {pct(unknown['false_alarm'], 0)} % of validation names) caught "
            f"{pct(unknown['caught_out_of_domain'], 1)} % of the names of other languages, and flagged "
            f"{pct(unknown['flagged_in_domain'], 1)} % of real names of the known languages "
            f"({pct(unknown['flagged_test'], 1)} % of the names folder's test split): treat it as a hint, not a verdict."
        )
    return text


def realworld_blocks(summary: dict) -> list[tuple]:
    """The report blocks of the realworld section (none without the suite)."""
    section = summary.get("realworld")
    if not section:
        return []
    focus = section["models"][section["focus"]]
    absent = [label for label in summary["labels"] if label not in section["per_language"]]
    return [
        ("h2", "Real-world names: the prior and unknown languages"),
        ("p", _introduction(section, absent)),
        _model_table(section),
        ("h3", f"Per language: {focus['title']}, --prior train → --prior {section['recommended_prior']}"),
        _language_table(section),
        *_unknown_blocks(section.get("unknown"), focus["title"]),
        ("h3", "Targets"),
        table(
            ["target", "goal", "measured", "verdict"],
            [
                [t["target"], f"{t['goal']:g}", "n/a" if t["measured"] is None else f"{t['measured']:.3f}", _gap(t)]
                for t in section["targets"]
            ],
        ),
        ("h3", "What to expect on real names"),
        ("p", advice(section)),
        ("p", f"The suite took {section['seconds']:.0f} s."),
    ]


def _introduction(section: dict, absent: list[str]) -> str:
    """What the benchmark holds and how its names are counted; ``absent``: the known languages it lacks."""
    bench, seeds = section["benchmark"], section["seeds"]
    return (
        f"Every model of this compare, scored on {bench['rows']} real surnames that no model saw ({bench['path']}; "
        f"docs/realworld.md): {bench['in_domain']} of {bench['in_domain_languages']} known languages, "
        f"{bench['out_of_domain']} of {bench['out_of_domain_languages']} others. Accuracy and macro-F1 count the "
        f"known-language names; the last two columns only the {bench['in_domain_unseen']} that do not occur in the "
        f"names folder. The estimate prior is fitted by EM over all {bench['rows']} names, foreign ones included, "
        "because a user does not know which of their names are foreign. "
        + (f"Mean ± std over seeds {', '.join(map(str, seeds))}." if len(seeds) > 1 else "One seed.")
        + (f" The benchmark has no names of {', '.join(absent)}." if absent else "")
    )


def _model_table(section: dict) -> tuple:
    """One row per model and prior; the names folder's test split beside the train prior's row."""
    rows = []
    for model in section["models"].values():
        for prior in section["priors"]:
            stats = model["priors"][prior]
            rows.append(
                [
                    model["title"],
                    PRIOR_TITLES.get(prior, prior),
                    _cell(stats["accuracy"]),
                    _cell(stats["macro_f1"]),
                    _cell(stats["unseen_accuracy"]),
                    _cell(stats["unseen_macro_f1"]),
                    f"{_cell(model['test_accuracy'])} / {_cell(model['test_macro_f1'])}" if prior == "train" else "",
                ]
            )
    return table(
        [
            "model",
            "prior",
            "accuracy %",
            "macro-F1 %",
            "accuracy %, not in folder",
            "macro-F1 %, not in folder",
            "test split: accuracy / macro-F1 %",
        ],
        rows,
    )


def _language_table(section: dict) -> tuple:
    """The focus model's recall per language under both priors, and the share flagged unknown."""
    rows = [
        [
            language,
            "yes" if row["in_domain"] else "no",
            row["n"],
            pct(row["before"], 1) if row["before"] is not None else "",
            pct(row["after"], 1) if row["after"] is not None else "",
            pct(row["flagged"], 1) if row["flagged"] is not None else "n/a",
        ]
        for language, row in section["per_language"].items()
    ]
    return table(
        [
            "language",
            "known",
            "names",
            "recall % (train)",
            f"recall % ({section['recommended_prior']})",
            "flagged unknown %",
        ],
        rows,
    )


def _unknown_blocks(unknown: dict | None, focus_title: str) -> list[tuple]:
    """How well the unknown-language score separates other languages, with its ROC (none without a scorer)."""
    if not unknown:
        return []
    return [
        ("h3", "Unknown language"),
        (
            "p",
            (
                f"AUROC of the unknown-language score (out-of-domain above in-domain): {unknown['auroc']:.3f}; of "
                f"1 − top probability ({focus_title}): {unknown['baseline_auroc']:.3f}. At the default threshold "
                f"({pct(unknown['false_alarm'], 0)} % of validation names) it flags {pct(unknown['flagged_test'], 1)} % "
                f"of the test split, {pct(unknown['flagged_in_domain'], 1)} % of the benchmark's known-language names "
                f"and {pct(unknown['caught_out_of_domain'], 1)} % of its other-language names. The scorer is fitted on "
                f"the split's training names, the same for {', '.join(unknown['same_scorer'])}."
            ),
        ),
        (
            "figure",
            "realworld-roc",
            (
                "ROC curve of the unknown-language score and of 1 − top probability on the "
                "benchmark; the dot is the default threshold."
            ),
        ),
    ]


def realworld_rules(summary: dict) -> list[str]:
    return [
        (
            "Realworld suite: the benchmark is evaluation only (nothing is fitted on it but the estimate prior, as a "
            "user's --prior estimate would); targets are judged on --preset best when the accuracy suite ran, else on "
            "the model with the best accuracy under the recommended prior; AUROC counts ties as one half."
        )
    ]
