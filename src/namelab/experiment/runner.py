"""namelab compare: run the chosen suites on one split, then write the summary and the report.

    summary = run_compare(CompareSettings(models=("rnn", "gru"), seeds=3), data_dir)

Each suite is a function of the shared Experiment returning its section of summary.json.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..data.corpus import Corpus
from ..report.render import write_report
from ..runs.checkpoint import (
    write_json,
)
from .accuracy import accuracy_suite
from .compare import SUITES, CompareSettings, Experiment, prepare, setup_section, warn_stale_runs
from .insights import insights_suite
from .realworld import realworld_suite
from .seed import seed_suite
from .stats import THRESHOLDS

SCHEMA = 1


def suite_registry() -> dict[str, Callable[[Experiment], dict]]:
    """Every suite ``namelab compare --suite`` runs, in report order.

    A suite is a function of the :class:`Experiment`: it trains (or reuses, through
    :func:`train_run`) its runs and returns its section of the summary, whose keys
    :func:`merge_section` adds to ``summary.json``; ``report.SECTIONS`` holds the
    matching renderer under the same name.
    """
    registry = {
        "seed": seed_suite, "insights": insights_suite, "accuracy": accuracy_suite, "realworld": realworld_suite,
    }  # fmt: skip
    return {name: registry[name] for name in SUITES}


def merge_section(summary: dict, section: dict) -> None:
    """Add a suite's section: new keys are added, dicts are merged, lists (the findings) are extended."""
    for key, value in section.items():
        if key not in summary:
            summary[key] = value
        elif isinstance(value, dict) and isinstance(summary[key], dict):
            summary[key].update(value)
        elif isinstance(value, list) and isinstance(summary[key], list):
            summary[key].extend(value)
        else:
            raise ValueError(f"two suites write the summary key {key!r}; give each suite its own key")


def run_compare(
    settings: CompareSettings,
    data_dir: Path,
    *,
    corpus: Corpus | None = None,
    log: Callable[[str], None] = print,
    between_epochs: Callable[[], object] = lambda: None,
) -> dict:
    """Run every suite of ``settings`` on one split, judge, and write the report; returns the summary.

    ``between_epochs`` runs between the epochs of every training (the CLI adapts torch's threads there).
    """
    experiment = prepare(settings, data_dir, corpus, log)
    experiment.between_epochs = between_epochs
    suites = suite_registry()
    summary = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "suites": list(settings.suites),
        "models": list(settings.models),
        "seeds": list(range(settings.seeds)),
        "labels": experiment.labels,
        "setup": setup_section(experiment),
        "thresholds": dict(THRESHOLDS),
        "findings": [],
    }
    for name in sorted(settings.suites, key=SUITES.index):  # realworld scores the runs the suites before it trained
        merge_section(summary, suites[name](experiment))
    warn_stale_runs(experiment)
    return write_summary(experiment, summary)


def write_summary(experiment: Experiment, summary: dict) -> dict:
    """Write the report and ``summary.json``; the total time is measured first so both show the same number."""
    summary["setup"]["total_seconds"] = experiment.elapsed()
    experiment.out.mkdir(parents=True, exist_ok=True)
    summary["files"] = write_report(summary, experiment.out)
    write_json(experiment.out / "summary.json", _finite(summary))
    experiment.log(f"report written to {experiment.out / 'report.html'} and {experiment.out / 'report.md'} "
                   f"({experiment.elapsed():.0f}s)")
    return summary


def _finite(obj):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
