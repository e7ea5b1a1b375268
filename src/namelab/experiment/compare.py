"""The experiment: every cell × every seed on one split, measured, then judged against the original report.

    namelab compare                                  # rnn, lstm, gru × 3 seeds -> reports/compare
    namelab compare --quick --data-dir D --out /tmp/c   # 2 epochs, 1 seed, small cells: a smoke test
    namelab compare --suite insights --out reports/insights   # dropout ablation + hyperparameter grid

or from Python::

    settings = CompareSettings(models=("rnn", "lstm", "gru"), seeds=3, config=TrainConfig(), out=Path("reports/c"))
    summary = run_compare(settings, data_dir)
    [(f["claim"], f["verdict"]) for f in summary["findings"]]

Every run trains on the same name-disjoint split (``split_seed`` fixed) with the same
budget; only the training seed varies, so runs with the same seed form pairs and
rankings are judged on paired differences. Each run is a normal run folder
(``OUT/runs/<model>-seed<k>``) usable by ``namelab predict`` and ``namelab evaluate``.
A rerun reuses every finished run whose configuration and data match, resumes unfinished
ones, and trains the rest; the report is removed first and rebuilt from the runs present.
``OUT/summary.json`` holds every number the report shows; :mod:`namelab.report.render`
draws the figures and writes ``report.html`` and ``report.md`` from it alone.

``--suite`` picks the experiments (:data:`SUITES`, run by :func:`namelab.experiment.runner.run_compare`): ``seed`` is the one above;
``insights`` (:mod:`namelab.experiment.insights`) checks the original report's closing lessons.
Every suite shares one :class:`Experiment` (data, split, output folder) and trains
through :func:`train_run`, so a configuration two suites need is trained once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.cells import CELLS
from ..core.model import CharClassifier
from ..data.corpus import Corpus, Example, Split
from ..data.download import dataset_checksum
from ..inference.base import Predictor
from ..runs.checkpoint import (
    CheckpointError,
    checkpoint_info,
    load_run,
    read_history,
    read_metrics,
    remove_stale_checkpoint,
    run_state,
)
from ..runs.config import TrainConfig, build_model, resolve_device, run_settings
from ..runs.env import cpu_name, environment
from ..train.loop import TrainResult, train
from .stats import change_std, epochs_to_fraction

QUICK_EPOCHS = 2


QUICK_SEEDS = 1


QUICK_HIDDEN_SIZE = 32


DEFAULT_SEEDS = 3


DEFAULT_MODELS = ("rnn", "lstm", "gru")


# Every suite `namelab compare --suite` runs, in report order (runner.suite_registry holds their functions).
SUITES = ("seed", "insights", "accuracy", "realworld")
DEFAULT_SUITES = ("seed",)


# The insights suite trains several times the seed experiment's runs: fewer epochs keep it affordable on a CPU.
SUITE_EPOCHS = {"insights": 10}


@dataclass(frozen=True)
class CompareSettings:
    models: tuple[str, ...] = DEFAULT_MODELS
    seeds: int = DEFAULT_SEEDS
    config: TrainConfig = TrainConfig()  # model and seed are set per run
    out: Path = Path("reports/compare")
    quick: bool = False
    suites: tuple[str, ...] = DEFAULT_SUITES
    benchmark: Path | None = None  # the realworld suite's CSV (None: the packaged data/realworld.csv)

    def __post_init__(self) -> None:
        known = SUITES
        unknown = [s for s in self.suites if s not in known]
        if not self.suites or unknown:
            raise ValueError(f"unknown suite(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
        if len(set(self.suites)) != len(self.suites):
            raise ValueError(f"--suite lists a suite twice ({','.join(self.suites)}); list each once")
        if not self.models:
            raise ValueError("no models to compare; pass --models with at least one of " + ", ".join(CELLS))
        unknown = [m for m in self.models if m not in CELLS]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(CELLS)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"--models lists a model twice ({','.join(self.models)}); list each once")
        if "realworld" in self.suites and self.benchmark is not None and not Path(self.benchmark).is_file():
            raise ValueError(f"--benchmark {self.benchmark} is not a file; give a CSV with the columns "
                             "name,language,in_domain,source or leave it out for the packaged benchmark")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be at least 1 (got {self.seeds})")
        if self.config.epochs < 1:
            raise ValueError(f"--epochs must be at least 1 (got {self.config.epochs})")
        if self.config.hidden_size < 1:
            raise ValueError(f"--hidden-size must be at least 1 (got {self.config.hidden_size})")


def default_epochs(suites: Sequence[str]) -> int:
    """Epochs per run when none are given: the seed experiment's, unless every suite asks for fewer."""
    return max(SUITE_EPOCHS.get(suite, TrainConfig.epochs) for suite in suites)


def parse_suites(text: str) -> tuple[str, ...]:
    """``"seed, insights"`` -> ``("seed", "insights")``; unknown names raise ``ValueError``."""
    suites = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    CompareSettings(suites=suites)  # validates, with the message the CLI shows
    return suites


def parse_models(text: str) -> tuple[str, ...]:
    """``"rnn, lstm,gru"`` -> ``("rnn", "lstm", "gru")``; unknown names raise ``ValueError``."""
    models = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    CompareSettings(models=models)  # validates, with the message the CLI shows
    return models


def run_name(model: str, seed: int) -> str:
    return f"{model}-seed{seed}"


def predictions_in_order(
    model: CharClassifier, examples: Sequence[Example], vocab, labels: list[str]
) -> tuple[list[int], list[float]]:
    """Predicted class of every example and its probability, in the examples' order."""
    probabilities = Predictor(model, vocab, labels).probabilities([e.name for e in examples])
    confidence, predicted = probabilities.max(dim=1)
    return predicted.tolist(), confidence.tolist()


def initial_model(config: TrainConfig, corpus: Corpus) -> CharClassifier:
    """The model ``train(config, corpus)`` starts from: train seeds torch, then builds the model."""
    torch.manual_seed(config.seed)
    return build_model(config, len(corpus.vocab), corpus.num_classes)


REPORT_FILES = ("summary.json", "report.html", "report.md")


def finished_or_trained(
    config: TrainConfig,
    corpus: Corpus,
    run_dir: Path,
    *,
    data_dir: Path,
    split: Split,
    log: Callable[[str], None],
    between_epochs: Callable[[], object] = lambda: None,
) -> TrainResult:
    """The run in ``run_dir`` when it is complete and was trained with ``config`` on this data; else train it.

    An unfinished run with the same configuration is resumed from its checkpoint; any
    other content of ``run_dir`` (another configuration, a damaged run) is replaced.
    """
    device = resolve_device(config.device)
    wanted = run_settings(asdict(config))
    state = run_state(run_dir)
    if state == "complete":
        remove_stale_checkpoint(run_dir)
        try:
            model, meta = load_run(run_dir, device=device)
            history, metrics = read_history(run_dir), read_metrics(run_dir)
        except CheckpointError as err:
            log(f"   {err}; training it again")
        else:
            same_config = run_settings(meta.get("config")) == wanted
            same_data = meta.get("dataset_sha256") == dataset_checksum(data_dir) and meta.get("n_test") == len(split.test)
            if same_config and same_data:
                log(f"   reusing the finished run in {run_dir}")
                return TrainResult(model=model, history=history, metrics=metrics, meta=meta)
            log(f"   {run_dir} holds a run of other settings or data; training it again")
    info = checkpoint_info(run_dir) if state == "unfinished" else None
    resume = info is not None and run_settings(info.get("config")) == wanted
    return train(
        config, corpus, run_dir, data_dir=data_dir, split=split, log=log, resume=resume, force=not resume,
        between_epochs=between_epochs,
    )  # fmt: skip


@dataclass
class Experiment:
    """What every phase of a compare shares: the data, one split, the output folder, the runs trained so far."""

    settings: CompareSettings
    data_dir: Path
    corpus: Corpus
    split: Split
    device: torch.device
    out: Path
    log: Callable[[str], None]
    started: float
    trained: dict[str, TrainResult] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # other run folders a suite wrote (ensembles, the n-gram baseline)
    between_epochs: Callable[[], object] = lambda: None

    @property
    def labels(self) -> list[str]:
        return self.corpus.labels

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def prepare(
    settings: CompareSettings, data_dir: Path, corpus: Corpus | None, log: Callable[[str], None]
) -> Experiment:
    """Read the data, draw the one split every run shares, and check the output folder."""
    started = time.perf_counter()
    corpus = corpus or Corpus.from_folder(data_dir)
    split = corpus.split(seed=settings.config.split_seed)
    if not split.test:
        raise ValueError("the dataset is too small to leave names for the test split; add names")
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    # The old report may describe runs this compare replaces: it goes before any run changes,
    # so an interrupted compare leaves no report rather than a wrong one.
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    device = resolve_device(settings.config.device)
    return Experiment(settings, data_dir, corpus, split, device, out, log, started)


def train_run(experiment: Experiment, config: TrainConfig, name: str) -> TrainResult:
    """Train ``config`` into ``OUT/runs/<name>``, once per compare: a name asked for again returns the same run."""
    if name not in experiment.trained:
        experiment.trained[name] = finished_or_trained(
            config, experiment.corpus, experiment.out / "runs" / name,
            data_dir=experiment.data_dir, split=experiment.split, log=experiment.log,
            between_epochs=experiment.between_epochs,
        )
    return experiment.trained[name]


def run_record(experiment: Experiment, config: TrainConfig, name: str, result: TrainResult) -> dict:
    """The numbers of one run that the summary keeps: test metrics, curves and the measures judged."""
    history = result.history
    val_accuracy = [row["val_accuracy"] for row in history]
    return {
        "model": config.cell,
        "seed": config.seed,
        "run_dir": str(Path("runs") / name),
        "test_accuracy": result.metrics["accuracy"],
        "test_macro_f1": result.metrics["macro_f1"],
        "parameters": result.meta["parameters"],
        "best_epoch": result.meta["best_epoch"],
        "epochs": len(history),
        "seconds_per_epoch": float(np.mean([row["seconds"] for row in history])),
        "train_seconds": float(np.sum([row["seconds"] for row in history])),
        "final_train_accuracy": history[-1]["train_accuracy"],
        "final_val_accuracy": val_accuracy[-1],
        "epochs_to_95": epochs_to_fraction(val_accuracy),
        "val_loss_change_std": change_std([row["val_loss"] for row in history]),
        "val_accuracy_change_std": change_std(val_accuracy),
        "history": history,
        "per_class": result.metrics["per_class"],
        "confusion": result.metrics["confusion"],
    }


def warn_stale_runs(experiment: Experiment) -> None:
    """Say which run folders under ``OUT/runs`` this compare did not write: the report ignores them."""
    runs_dir = experiment.out / "runs"
    if not runs_dir.is_dir():
        return
    kept = set(experiment.trained) | experiment.written
    stale = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name not in kept)
    if stale:
        experiment.log(f"note: {runs_dir} also holds {', '.join(stale)}, left from an earlier compare; "
                       "this report ignores them")


def setup_section(experiment: Experiment) -> dict:
    """The data, split, configuration and machine every run shared."""
    corpus, split, device, stats = experiment.corpus, experiment.split, experiment.device, experiment.corpus.stats
    config = asdict(experiment.settings.config)
    config.pop("cell")
    config.pop("seed")
    versions = environment()
    versions.update(numpy=np.__version__, matplotlib=_matplotlib_version())
    return {
        "data_dir": str(experiment.data_dir),
        "dataset_sha256": dataset_checksum(experiment.data_dir),
        "raw_counts": stats.raw_counts,
        "dedup_counts": stats.dedup_counts,
        "raw_total": sum(stats.raw_counts.values()),
        "dedup_total": len(corpus.pairs),
        "duplicates_removed": sum(stats.raw_counts.values()) - len(corpus.pairs) - len(stats.skipped_lines),
        "skipped_lines": len(stats.skipped_lines),
        "names_in_several_languages": len(stats.shared_names),
        "split": {**split.sizes(), "split_seed": experiment.settings.config.split_seed},
        "test_counts": {label: sum(1 for e in split.test if e.label == i) for i, label in enumerate(corpus.labels)},
        "config": config,
        "versions": versions,
        "device": str(device),
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _matplotlib_version() -> str:
    import matplotlib  # only its version: figures are drawn by the report

    return matplotlib.__version__
