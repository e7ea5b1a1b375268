"""The report as one list of blocks: introduction, findings, each suite's section, setup and rules.

    blocks = report_blocks(summary)      # [("h2", ...), ("table", headers, rows), ...]
    figures = make_figures(summary)      # {name: PNG bytes}

Each suite of ``namelab compare`` has a :class:`Section` in :data:`SECTIONS` (its title,
figures, blocks and judging rules); the findings keep numbers only, and
:func:`finding_evidence` puts them into words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..runs.config import current_names
from .accuracy import accuracy_blocks, accuracy_figures, accuracy_rules
from .common import model_title, suites_of, table
from .insights import dropout_evidence, hyperparameters_evidence, insights_blocks, insights_figures, insights_rules
from .realworld import realworld_blocks, realworld_figures, realworld_rules
from .seed import gradient_evidence, levels_evidence, ranking_evidence, seed_blocks, seed_figures, seed_rules
from .takeaways import takeaways


def make_figures(summary: dict) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by file stem, in report order."""
    figures: dict[str, bytes] = {}
    for suite in suites_of(summary):
        figures.update(SECTIONS[suite].figures(summary))
    return figures


def report_blocks(summary: dict) -> list[tuple]:
    """The whole document: title, takeaways, introduction, contents, every finding, each suite's sections,
    setup, the rules.

    ``("takeaways", sentences)`` is the plain-words box at the top; ``("toc",)`` stands for a
    list of links to every h2 after it, which the renderers fill in.
    """
    title, *intro = intro_blocks(summary)
    sentences = takeaways(summary)
    blocks = [title, *([("takeaways", sentences)] if sentences else []), *intro, ("toc",), *findings_blocks(summary)]
    for suite in suites_of(summary):
        blocks += SECTIONS[suite].blocks(summary)
    return blocks + setup_blocks(summary) + rules_blocks(summary)


def intro_blocks(summary: dict) -> list[tuple]:
    setup, config = summary["setup"], current_names(summary["setup"]["config"])  # a summary may predate the names
    titles = ", ".join(model_title(m) for m in summary["models"])
    return [
        ("h1", "namelab: " + "; ".join(SECTIONS[suite].title for suite in suites_of(summary))),
        (
            "p",
            f"{titles}, each trained on {len(summary['seeds'])} seed(s) ({', '.join(str(s) for s in summary['seeds'])}) "
            f"on the same name-disjoint split (split seed {config['split_seed']}) for {config['epochs']} epochs, "
            f"hidden size {config['hidden_size']}, {config['engine']} engine, on {setup['device']}. Test accuracy is "
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
        table(
            ["Original claim", "Measured by", "Verdict", "Evidence"],
            [[f["claim"], f["measure"], f["verdict"], finding_evidence(f)] for f in summary["findings"]],
        ),
    ]


def setup_blocks(summary: dict) -> list[tuple]:
    setup = summary["setup"]
    return [
        ("h2", "Setup"),
        ("h3", "Data"),
        table(
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
        table(["Setting", "Value"], [[k, v] for k, v in setup["config"].items()]),
        ("h3", "Software and hardware"),
        table(
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


def finding_evidence(finding: dict) -> str:
    """The evidence column of a finding: one line of means, then one line per comparison."""
    return _EVIDENCE[finding["kind"]](finding)


_EVIDENCE = {
    "ranking": ranking_evidence,
    "levels": levels_evidence,
    "gradient": gradient_evidence,
    "dropout": dropout_evidence,
    "hyperparameters": hyperparameters_evidence,
}


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
    "realworld": Section("real-world names", realworld_figures, realworld_blocks, realworld_rules),
}
