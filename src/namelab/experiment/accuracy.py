"""The accuracy suite: the best recipes and the n-gram baseline beside the seed experiment.

    namelab compare --suite seed,accuracy     # the seed experiment, then this suite, one report

or from Python, on the split and seeds of a compare run::

    section = run_accuracy_suite(base_config, corpus, split, out, seeds=[0, 1, 2], data_dir=folder)

It trains, on the same split and the same seeds as the seed experiment, the best single
model (the ``best`` preset's recurrent member) and the ``best`` preset's ensemble (that model plus the
n-gram baseline), and the n-gram baseline itself (deterministic: fitted once). Each is a
normal run folder under ``OUT/runs/`` that ``predict``, ``evaluate`` and ``serve`` read.
Its section of ``summary.json`` (key ``"accuracy"``) holds every figure the report's
accuracy section (report.py) shows, with the seed cells' own calibration read from
their ``metrics.json``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from ..data.corpus import Corpus, Split
from ..data.download import dataset_checksum
from ..runs.checkpoint import METRICS, read_json
from ..runs.config import TrainConfig
from ..train.ngram import train_ngram
from ..train.presets import MEMBERS, PRESETS, member_name, train_ensemble
from .compare import Experiment, finished_or_trained
from .stats import describe

NGRAM = "ngram"
CALIBRATION_FIELDS = ("ece_before", "ece_after", "coverage", "mean_set_size")


def _row(title: str, metrics: list[dict], seconds: list[float], note: str = "") -> dict:
    row = {
        "title": title,
        "note": note,
        "test_accuracy": describe([m["accuracy"] for m in metrics]),
        "test_macro_f1": describe([m["macro_f1"] for m in metrics]),
        "train_seconds": describe(seconds),
    }
    for field in CALIBRATION_FIELDS:
        if all(field in m for m in metrics):
            row[field] = describe([m[field] for m in metrics])
    return row


def run_accuracy_suite(
    base: TrainConfig,
    corpus: Corpus,
    split: Split,
    out: Path,
    seeds: Sequence[int],
    *,
    data_dir: Path | None = None,
    seed_models: Sequence[str] = (),
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the suite under ``out/runs`` and return its summary section (see the module docstring).

    ``quick`` (compare --quick) trains the recurrent model with ``base``'s epochs and hidden size.
    """
    out = Path(out)
    single = _best_single(base, quick)
    started = time.perf_counter()
    progress = _progress(len(seeds) + 1, started, log)

    progress(1, "character n-gram logistic regression")
    ngram_dir = out / "runs" / NGRAM
    ngram_metrics, ngram_seconds = _fit_ngram(base, corpus, split, ngram_dir, data_dir)

    single_metrics, single_seconds, ensemble_metrics, ensemble_seconds = [], [], [], []
    for step, seed in enumerate(seeds, 2):
        config = replace(single, seed=seed)
        folder = out / "runs" / f"best-seed{seed}"
        progress(step, f"{member_name(config)} + n-gram ensemble -> {folder}")
        t0 = time.perf_counter()
        member = folder / MEMBERS / member_name(config)
        result = finished_or_trained(config, corpus, member, data_dir=data_dir, split=split, log=log)
        single_metrics.append(result.metrics)
        single_seconds.append(time.perf_counter() - t0)
        ensemble_metrics.append(_best_ensemble(corpus, split, folder, member, ngram_dir, data_dir, log))
        # The ensemble's cost includes its n-gram member's, fitted once before the loop.
        ensemble_seconds.append(time.perf_counter() - t0 + ngram_seconds)

    recipe = member_name(single).rsplit("-seed", 1)[0]
    rows = {
        NGRAM: _row(
            "char 1–4-gram logistic regression", [ngram_metrics], [ngram_seconds], "deterministic: fitted once"
        ),
        "best_single": _row(f"best single: {recipe}", single_metrics, single_seconds),
        "best_ensemble": _row("best ensemble (--preset best)", ensemble_metrics, ensemble_seconds),
    }
    return {
        "seeds": list(seeds),
        "recipe": {"single": recipe, "ensemble": PRESETS["best"].description},
        "rows": rows,
        "seed_cells_calibration": _seed_cells_calibration(out, seed_models, seeds),
        "reliability": {
            "title": f"best ensemble, seed {seeds[0]}",
            "before": ensemble_metrics[0]["reliability_before"],
            "after": ensemble_metrics[0]["reliability"],
            "temperature": ensemble_metrics[0]["temperature"],
        },
        "seconds": time.perf_counter() - started,
    }


def _best_single(base: TrainConfig, quick: bool) -> TrainConfig:
    """The ``best`` preset's recurrent member on ``base``'s split and device (and size, when ``quick``)."""
    (single,) = PRESETS["best"].members
    single = replace(single, split_seed=base.split_seed, device=base.device)
    if quick:
        single = replace(single, epochs=base.epochs, hidden_size=base.hidden_size)
    return single


def _progress(total: int, started: float, log: Callable[[str], None]) -> Callable[[int, str], None]:
    """A logger of step ``step`` of ``total``, with the time so far and, past the first, a guess of the rest."""

    def progress(step: int, what: str) -> None:
        elapsed = time.perf_counter() - started
        eta = f", about {elapsed / (step - 1) * (total - step + 1):.0f} s left" if step > 1 else ""
        log(f"== accuracy suite {step}/{total}: {what} ({elapsed:.0f} s so far{eta})")

    return progress


def _fit_ngram(
    base: TrainConfig, corpus: Corpus, split: Split, ngram_dir: Path, data_dir: Path | None
) -> tuple[dict, float]:
    """The n-gram baseline's test metrics and fitting time; it is deterministic, so one fit serves every seed."""
    checksum = dataset_checksum(data_dir) if data_dir else None
    meta = {"config": {"split_seed": base.split_seed}, "vocab": corpus.vocab.chars, "dataset_sha256": checksum}
    sizes = split.sizes()
    t0 = time.perf_counter()
    metrics = train_ngram(split, corpus.labels, ngram_dir, meta={**meta, **sizes}, c_grid=PRESETS["best"].ngram_c)
    return metrics, time.perf_counter() - t0


def _best_ensemble(
    corpus: Corpus,
    split: Split,
    folder: Path,
    member: Path,
    ngram_dir: Path,
    data_dir: Path | None,
    log: Callable[[str], None],
) -> dict:
    """The ``best`` ensemble of the trained ``member`` and a copy of the n-gram fit, written to ``folder``."""
    shutil.copytree(ngram_dir, folder / MEMBERS / NGRAM, dirs_exist_ok=True)
    return train_ensemble(
        [],
        corpus,
        folder,
        ngram=False,
        data_dir=data_dir,
        split=split,
        members_ready=[member, folder / MEMBERS / NGRAM],
        meta={"preset": "best", "description": PRESETS["best"].description},
        log=log,
    )


def _seed_cells_calibration(out: Path, seed_models: Sequence[str], seeds: Sequence[int]) -> dict:
    """Each seed-suite cell's calibration over its finished seeds (a cell missing a field is left out)."""
    seed_cells = {}
    for model in seed_models:
        runs = [out / "runs" / f"{model}-seed{seed}" / METRICS for seed in seeds]
        found = [read_json(path) for path in runs if path.is_file()]
        if found and all(all(f in m for f in CALIBRATION_FIELDS) for m in found):
            seed_cells[model] = {f: describe([m[f] for m in found]) for f in CALIBRATION_FIELDS}
    return seed_cells


def accuracy_suite(experiment: Experiment) -> dict:
    """The compare suite ``accuracy``: :func:`run_accuracy_suite` on the experiment's split and seeds."""
    settings = experiment.settings
    experiment.written |= {NGRAM, *(f"best-seed{seed}" for seed in range(settings.seeds))}
    return {
        "accuracy": run_accuracy_suite(
            settings.config,
            experiment.corpus,
            experiment.split,
            experiment.out,
            list(range(settings.seeds)),
            data_dir=experiment.data_dir,
            seed_models=settings.models if "seed" in settings.suites else (),
            quick=settings.quick,
            log=experiment.log,
        )
    }
