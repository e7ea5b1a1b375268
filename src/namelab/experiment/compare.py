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

``--suite`` picks the experiments (:func:`suite_registry`): ``seed`` is the one above;
``insights`` (:mod:`namelab.experiment.insights`) checks the original report's closing lessons.
Every suite shares one :class:`Experiment` (data, split, output folder) and trains
through :func:`train_run`, so a configuration two suites need is trained once.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.cells import CELLS
from ..runs.checkpoint import CheckpointError, checkpoint_info, load_run, read_history, read_metrics, run_state, write_json
from ..data.corpus import Corpus, Example, Split
from ..data.download import dataset_checksum
from ..core.model import CharClassifier
from ..predict.base import Predictor
from .probe import gradient_flow, probe_examples
from ..runs.env import cpu_name, environment
from ..core.metrics import confusion_matrix
from ..report.render import write_report
from ..train.loop import TrainConfig, TrainResult, build_model, resolve_device, train

SCHEMA = 1
QUICK_EPOCHS = 2
QUICK_SEEDS = 1
QUICK_HIDDEN_SIZE = 32
DEFAULT_SEEDS = 3
DEFAULT_MODELS = ("rnn", "lstm", "gru")
DEFAULT_SUITES = ("seed",)
# The insights suite trains several times the seed experiment's runs: fewer epochs keep it affordable on a CPU.
SUITE_EPOCHS = {"insights": 10}

# -- how findings are judged: every threshold in one place, quoted by the report ---------
MIN_SEEDS = 3  # fewer paired seeds than this never settle a noisy comparison
NOISE_SE = 2.0  # a mean paired difference under this many standard errors is "within the noise"
CONVERGENCE_FRACTION = 0.95  # convergence = epochs to reach this fraction of the final val accuracy
LEVEL_TOLERANCE = 0.03  # a reported accuracy is reproduced when the measured one is within 3 points
GRADIENT_DECADES = 1.0  # "gating fixes the vanishing gradient" needs ≥10× more gradient reaching far steps
TOP_CONFUSIONS = 5
EXAMPLES_PER_CONFUSION = 4

ORIGINAL_ACCURACY = {"lstm": 0.85, "gru": 0.82, "rnn": 0.75}  # training accuracy of one run

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass(frozen=True)
class CompareSettings:
    models: tuple[str, ...] = DEFAULT_MODELS
    seeds: int = DEFAULT_SEEDS
    config: TrainConfig = TrainConfig()  # model and seed are set per run
    out: Path = Path("reports/compare")
    quick: bool = False
    suites: tuple[str, ...] = DEFAULT_SUITES

    def __post_init__(self) -> None:
        known = suite_registry()
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


# -- numbers from one run ----------------------------------------------------------------


def epochs_to_fraction(values: Sequence[float], fraction: float = CONVERGENCE_FRACTION) -> float:
    """First (fractional) epoch at which ``values`` reaches ``fraction`` of its last value.

    ``values[i]`` is measured after epoch ``i + 1``; between two epochs the curve is
    taken as linear, so 3.5 means halfway through the fourth epoch. A target reached
    after the first epoch gives 1.0.
    """
    if not values:
        raise ValueError("no epochs to measure convergence on")
    target = fraction * values[-1]
    for i, value in enumerate(values):
        if value >= target:
            if i == 0:
                return 1.0
            previous = values[i - 1]
            return i + (target - previous) / (value - previous)
    return float(len(values))  # unreachable: the last value always reaches its own fraction


def change_std(values: Sequence[float]) -> float | None:
    """Standard deviation of the epoch-to-epoch changes; ``None`` with fewer than 3 epochs."""
    if len(values) < 3:
        return None
    return float(np.std(np.diff(np.asarray(values, dtype=float)), ddof=1))


def describe(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation (``None`` for one value), min, max and the values."""
    known = [float(v) for v in values if v is not None]
    if not known or len(known) != len(values):
        return {"mean": None, "std": None, "min": None, "max": None, "values": list(values)}
    array = np.asarray(known)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else None,
        "min": float(array.min()),
        "max": float(array.max()),
        "values": known,
    }


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


# -- paired comparisons and findings -----------------------------------------------------


def paired_difference(a: Sequence[float | None], b: Sequence[float | None], *, exact: bool = False) -> dict:
    """Compare two models run for run (same seed, same split): is ``a`` above ``b``?

    ``outcome`` is ``"a"`` when a > b clearly, ``"b"`` when b > a clearly, else
    ``"noise"``. Clearly means: every pair has the same sign, at least
    :data:`MIN_SEEDS` pairs, and a mean difference of at least :data:`NOISE_SE`
    standard errors. This is a rule of thumb for three seeds, not a significance
    test. ``exact`` quantities (parameter counts) have no noise: the sign decides.
    """
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs as many values on each side ({len(a)} vs {len(b)})")
    result = {"n": len(a), "mean": None, "std": None, "se": None, "t": None, "positive": 0, "negative": 0}
    if not a or any(v is None for v in [*a, *b]):
        return {**result, "outcome": "noise", "reason": "not measured"}
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(diff)
    positive, negative = int((diff > 0).sum()), int((diff < 0).sum())
    std = float(diff.std(ddof=1)) if n > 1 else None
    se = std / math.sqrt(n) if std is not None else None
    mean = float(diff.mean())
    t = mean / se if se else None
    result.update(mean=mean, std=std, se=se, t=t, positive=positive, negative=negative)
    if exact:
        outcome = "a" if positive == n else "b" if negative == n else "noise"
        reason = "exact quantity" if outcome != "noise" else "equal"
    elif n < MIN_SEEDS:
        outcome, reason = "noise", f"only {n} seed(s); at least {MIN_SEEDS} are needed"
    elif positive == 0 and negative == 0:
        outcome, reason = "noise", "no difference in any seed"
    elif positive + negative < n:
        outcome, reason = "noise", "some seeds tie"
    elif positive != n and negative != n:
        outcome, reason = "noise", "the seeds disagree on the sign"
    elif abs(mean) < NOISE_SE * se:
        outcome, reason = "noise", f"mean difference under {NOISE_SE:g} standard errors"
    else:
        outcome, reason = ("a" if positive == n else "b"), "all seeds agree and mean ≥ 2 standard errors"
    return {**result, "outcome": outcome, "reason": reason}


def judge_ranking(
    claim: str,
    measure: str,
    values: dict[str, Sequence[float | None]],
    order: Sequence[str],
    *,
    higher_is_better: bool,
    scale: float = 1.0,
    unit: str = "",
    digits: int = 2,
    exact: bool = False,
    key: str = "",
) -> dict:
    """Judge "``order[0]`` beats ``order[1]`` beats …" on per-seed ``values`` of each model.

    Every pair in the claimed order is compared run for run (:func:`paired_difference`),
    oriented so that a positive difference agrees with the claim. Supported: every pair
    holds. Not supported: at least one pair is clearly reversed. Otherwise inconclusive.
    Models absent from ``values`` are left out of the claim. ``scale``, ``unit`` and
    ``digits`` say how the report shows the numbers.
    """
    present = [m for m in order if m in values]
    pairs = []
    for i, first in enumerate(present):
        for second in present[i + 1 :]:
            better, worse = (values[first], values[second]) if higher_is_better else (values[second], values[first])
            pairs.append({"first": first, "second": second, **paired_difference(better, worse, exact=exact)})
    return {
        "key": key,
        "kind": "ranking",
        "claim": claim,
        "measure": measure,
        "verdict": verdict_of([p["outcome"] for p in pairs]),
        "order": list(order),
        "display": {"scale": scale, "unit": unit, "digits": digits, "exact": exact,
                    "higher_is_better": higher_is_better},
        "means": {m: describe(values[m]) for m in present},
        "pairs": pairs,
    }


def verdict_of(outcomes: Sequence[str]) -> str:
    """Supported when every comparison holds ("a"), not supported when one is reversed ("b")."""
    if not outcomes:
        return INCONCLUSIVE
    if all(o == "a" for o in outcomes):
        return SUPPORTED
    if any(o == "b" for o in outcomes):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def judge_levels(
    claim: str, test_accuracy: dict[str, Sequence[float]], train_accuracy: dict[str, Sequence[float]]
) -> dict:
    """Are the reported accuracies reproduced (within :data:`LEVEL_TOLERANCE`) by the test accuracy?

    Supported: every model's mean within the tolerance (with at least :data:`MIN_SEEDS`
    seeds). Not supported: some model's mean is farther than the tolerance plus
    :data:`NOISE_SE` standard errors. Otherwise inconclusive. The final-epoch training
    accuracy, the quantity the original report plotted, is kept beside it.
    """
    rows, within, outside, n_min = [], [], [], None
    for model, reported in ORIGINAL_ACCURACY.items():
        if model not in test_accuracy:
            continue
        d = describe(test_accuracy[model])
        n = len(d["values"])
        n_min = n if n_min is None else min(n_min, n)
        se = d["std"] / math.sqrt(n) if d["std"] is not None else 0.0
        gap = d["mean"] - reported
        within.append(abs(gap) <= LEVEL_TOLERANCE)
        outside.append(abs(gap) > LEVEL_TOLERANCE + NOISE_SE * se and n >= MIN_SEEDS)
        rows.append({"model": model, "reported": reported, "test": d, "train": describe(train_accuracy[model]),
                     "gap": gap})
    if not rows:
        verdict = INCONCLUSIVE
    elif any(outside):
        verdict = NOT_SUPPORTED
    elif all(within) and n_min >= MIN_SEEDS:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return {
        "key": "accuracy_levels",
        "kind": "levels",
        "claim": claim,
        "measure": f"mean test accuracy within ±{LEVEL_TOLERANCE * 100:.0f} points of the reported value",
        "verdict": verdict,
        "rows": rows,
        "seeds": n_min or 0,
        "min_seeds": MIN_SEEDS,
        "pairs": [],
    }


def judge_gradient(
    claim: str, ratios_init: dict[str, Sequence[float]], ratios_trained: dict[str, Sequence[float]]
) -> dict:
    """Does more gradient reach far steps in gated cells than in the RNN, after training?

    On log10 of the ratio (gradient norm at the farthest probed step / at the last
    step), each gated cell is compared with the RNN run for run. Supported: every gated
    cell clearly above the RNN by at least :data:`GRADIENT_DECADES` decades. Not
    supported: some gated cell clearly at or below the RNN (reversed, or clearly above
    by less than the threshold). Otherwise inconclusive. The geometric means of the
    ratios at initialization and after training are kept beside them.
    """
    gated = [m for m in ("lstm", "gru") if m in ratios_trained]
    ratios = {
        model: {"init": _geo(ratios_init[model]), "trained": _geo(ratios_trained[model])}
        for model in ("rnn", "lstm", "gru")
        if model in ratios_trained
    }
    pairs, statuses = [], []
    if "rnn" in ratios_trained:
        log_rnn = [_log10(r) for r in ratios_trained["rnn"]]
        for model in gated:
            pair = paired_difference([_log10(r) for r in ratios_trained[model]], log_rnn)
            if pair["outcome"] == "a" and pair["mean"] >= GRADIENT_DECADES:
                status = "holds"
            elif pair["outcome"] in ("a", "b"):
                status = "fails"  # reversed, or clearly above but by less than the threshold
            else:
                status = "noise"
            statuses.append(status)
            pairs.append({"first": model, "second": "rnn", **pair, "status": status})
    if pairs and all(s == "holds" for s in statuses):
        verdict = SUPPORTED
    elif any(s == "fails" for s in statuses):
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    measure = (
        f"log10 of (‖dL/dh‖ at the farthest probed step / at the last step) after training, "
        f"gated minus RNN, paired by seed; needs ≥ {GRADIENT_DECADES:g} decade(s)"
    )
    return {
        "key": "vanishing_gradient",
        "kind": "gradient",
        "claim": claim,
        "measure": measure if pairs else "far/end gradient-norm ratio, gated cells vs RNN",
        "verdict": verdict,
        "ratios": ratios,
        "decades": GRADIENT_DECADES,
        "pairs": pairs,
    }


def _log10(ratio: float) -> float:
    # A recurrence cut to exactly zero gives a zero ratio: call it 300 decades down, not an error.
    return math.log10(max(ratio, 1e-300))


def _geo(values: Sequence[float]) -> float:
    """Geometric mean of ratios."""
    return 10 ** float(np.mean([_log10(v) for v in values]))


def judge_findings(models: dict[str, dict], gradient: dict[str, dict]) -> list[dict]:
    """The original report's findings, each beside the numbers this run measured."""

    def values(field: str) -> dict[str, list]:
        return {m: s[field]["values"] for m, s in models.items()}

    findings = [
        judge_ranking(
            "Accuracy: LSTM > GRU > RNN",
            "test accuracy, paired by seed (points)",
            values("test_accuracy"),
            ["lstm", "gru", "rnn"],
            higher_is_better=True,
            scale=100,
            unit=" points",
            key="accuracy_ranking",
        ),
        judge_levels(
            "Accuracy levels: LSTM ~85 %, GRU ~82 %, RNN ~75 % (training accuracy of one run)",
            values("test_accuracy"),
            values("final_train_accuracy"),
        ),
        judge_ranking(
            "Convergence: LSTM fastest, RNN slowest",
            f"epochs to reach {CONVERGENCE_FRACTION:.0%} of the final validation accuracy (fewer is faster)",
            values("epochs_to_95"),
            ["lstm", "gru", "rnn"],
            higher_is_better=False,
            unit=" epochs",
            key="convergence",
        ),
        judge_ranking(
            "Stability: LSTM trains most stably, RNN fluctuates most",
            "std of the epoch-to-epoch changes of the validation loss (smaller is steadier)",
            values("val_loss_change_std"),
            ["lstm", "gru", "rnn"],
            higher_is_better=False,
            digits=4,
            key="stability",
        ),
        judge_ranking(
            "Cost: RNN cheapest, LSTM most expensive (parameters)",
            "number of parameters",
            {m: [s["parameters"]] * len(s["test_accuracy"]["values"]) for m, s in models.items()},
            ["rnn", "gru", "lstm"],
            higher_is_better=False,
            digits=0,
            exact=True,
            key="cost_parameters",
        ),
        judge_ranking(
            "Cost: RNN cheapest, LSTM most expensive (training time)",
            "seconds per training epoch, paired by seed",
            values("seconds_per_epoch"),
            ["rnn", "gru", "lstm"],
            higher_is_better=False,
            unit=" s",
            key="cost_time",
        ),
        judge_gradient(
            "Gating fixes the vanishing gradient",
            {m: g["ratio_init"]["values"] for m, g in gradient.items()},
            {m: g["ratio_trained"]["values"] for m, g in gradient.items()},
        ),
    ]
    return findings


# -- the experiment ----------------------------------------------------------------------


def mean_curves(histories: list[list[dict]]) -> dict:
    """Per-epoch mean, min, max and std over seeds of every history field."""
    epochs = min(len(h) for h in histories)
    out: dict = {"epoch": list(range(1, epochs + 1))}
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        array = np.asarray([[row[name] for row in h[:epochs]] for h in histories], dtype=float)  # (S, E)
        out[name] = {
            "mean": array.mean(axis=0).tolist(),
            "min": array.min(axis=0).tolist(),
            "max": array.max(axis=0).tolist(),
            "std": array.std(axis=0, ddof=1).tolist() if len(histories) > 1 else None,
        }
    return out


def _confusions(
    confusion: np.ndarray, labels: list[str], errors: dict[tuple[int, int], dict[str, list[float]]], seeds: int
) -> list[dict]:
    """The most frequent (true, predicted) mistakes, pooled over seeds, with example test names.

    ``errors[(true, predicted)][name]`` lists the probability each erring run gave the
    wrong language; examples are the names most seeds got wrong, then the most confidently.
    """
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    support = confusion.sum(axis=1)
    cells = sorted(
        ((int(off[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if off[i, j] > 0),
        key=lambda c: (-c[0], c[1], c[2]),
    )[:TOP_CONFUSIONS]
    out = []
    for count, i, j in cells:
        names = errors.get((i, j), {})
        ranked = sorted(names.items(), key=lambda item: (-len(item[1]), -float(np.mean(item[1])), item[0]))
        ranked = ranked[:EXAMPLES_PER_CONFUSION]
        out.append(
            {
                "true": labels[i],
                "predicted": labels[j],
                "count": count,
                "share": float(count / support[i]) if support[i] else 0.0,
                "examples": [
                    {"name": name, "seeds": len(probs), "of": seeds, "probability": float(np.mean(probs))}
                    for name, probs in ranked
                ],
            }
        )
    return out


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
    wanted = {k: v for k, v in asdict(config).items() if k != "device"}  # where it ran does not change the run
    state = run_state(run_dir)
    if state == "complete":
        try:
            model, meta = load_run(run_dir, device=device)
            history, metrics = read_history(run_dir), read_metrics(run_dir)
        except CheckpointError as err:
            log(f"   {err}; training it again")
        else:
            same_config = {k: v for k, v in meta["config"].items() if k != "device"} == wanted
            same_data = meta.get("dataset_sha256") == dataset_checksum(data_dir) and meta.get("n_test") == len(split.test)
            if same_config and same_data:
                log(f"   reusing the finished run in {run_dir}")
                return TrainResult(model=model, history=history, metrics=metrics, meta=meta)
            log(f"   {run_dir} holds a run of other settings or data; training it again")
    info = checkpoint_info(run_dir) if state == "unfinished" else None
    resume = info is not None and {k: v for k, v in info.get("config", {}).items() if k != "device"} == wanted
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
        "model": config.model,
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


def record_errors(errors: dict, examples: Sequence[Example], predicted: list[int], confidence: list[float]) -> None:
    """Add each misclassified name to ``errors[(true, predicted)][name]``, with the wrong language's probability."""
    for example, guess, probability in zip(examples, predicted, confidence):
        if guess != example.label:
            errors.setdefault((example.label, guess), {}).setdefault(example.name, []).append(probability)


def measure_seed_runs(experiment: Experiment, probe_batch: list[Example]) -> tuple[list[dict], dict, dict]:
    """Train every model on every seed; returns the run records, gradient norms on ``probe_batch`` and test errors."""
    settings, split, labels = experiment.settings, experiment.split, experiment.labels
    seeds = range(settings.seeds)
    total = len(settings.models) * len(seeds)
    runs: list[dict] = []
    flows: dict[str, dict[str, list]] = {m: {"init": [], "trained": []} for m in settings.models}
    errors: dict[str, dict] = {m: {} for m in settings.models}
    for seed in seeds:  # seed-major: an interrupted compare still has every model on the first seeds
        for model_name in settings.models:
            config = replace(settings.config, model=model_name, seed=seed)
            name = run_name(model_name, seed)
            experiment.log(f"== run {len(runs) + 1}/{total}: {model_name} seed {seed} -> {experiment.out / 'runs' / name}")
            init = initial_model(config, experiment.corpus).to(experiment.device)
            flows[model_name]["init"].append(gradient_flow(init, probe_batch, experiment.corpus.vocab).norms.tolist())
            del init
            result = train_run(experiment, config, name)
            flows[model_name]["trained"].append(
                gradient_flow(result.model, probe_batch, experiment.corpus.vocab).norms.tolist()
            )
            predicted, confidence = predictions_in_order(result.model, split.test, experiment.corpus.vocab, labels)
            record_errors(errors[model_name], split.test, predicted, confidence)
            recomputed = confusion_matrix([e.label for e in split.test], predicted, len(labels))
            matches = recomputed.tolist() == result.metrics["confusion"]
            if not matches:
                experiment.log(f"warning: runs/{name}: predictions by name differ from metrics.json; "
                               "examples may not match counts")
            runs.append({**run_record(experiment, config, name, result), "predictions_match_metrics": matches})
            done = experiment.elapsed()
            experiment.log(
                f"   test accuracy {result.metrics['accuracy']:.4f}  macro-F1 {result.metrics['macro_f1']:.4f}  "
                f"elapsed {done:.0f}s, about {done / len(runs) * (total - len(runs)):.0f}s to go"
            )
    return runs, flows, errors


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


_DESCRIBED = (
    "test_accuracy",
    "test_macro_f1",
    "seconds_per_epoch",
    "train_seconds",
    "final_train_accuracy",
    "final_val_accuracy",
    "epochs_to_95",
    "val_loss_change_std",
    "val_accuracy_change_std",
)


def aggregate_model(runs: list[dict], labels: list[str], errors: dict) -> dict:
    """One model's runs pooled: every measure described over seeds, mean curves, per-class scores, confusions."""
    confusion = np.sum([np.asarray(r["confusion"]) for r in runs], axis=0)
    per_class = {}
    for label in labels:
        rows = [r["per_class"][label] for r in runs]
        per_class[label] = {
            "precision": float(np.mean([row["precision"] for row in rows])),
            "recall": float(np.mean([row["recall"] for row in rows])),
            "f1": float(np.mean([row["f1"] for row in rows])),
            "f1_std": float(np.std([row["f1"] for row in rows], ddof=1)) if len(rows) > 1 else None,
            "support": rows[0]["support"],
        }
    return {
        "seeds": [r["seed"] for r in runs],
        "parameters": runs[0]["parameters"],
        **{field: describe([r[field] for r in runs]) for field in _DESCRIBED},
        "best_epoch": [r["best_epoch"] for r in runs],
        "curves": mean_curves([r["history"] for r in runs]),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confused_pairs": _confusions(confusion, labels, errors, len(runs)),
    }


def aggregate_gradient(flows: dict[str, list]) -> dict:
    """One model's gradient norms per distance, at initialization and trained: mean, min, max, per seed, ratios."""
    entry = {}
    for stage in ("init", "trained"):
        array = np.asarray(flows[stage], dtype=float)  # (S, D)
        entry[stage] = {
            "mean": array.mean(axis=0).tolist(),
            "min": array.min(axis=0).tolist(),
            "max": array.max(axis=0).tolist(),
            "per_seed": array.tolist(),
        }
        entry[f"ratio_{stage}"] = describe((array[:, -1] / array[:, 0]).tolist())
    return entry


def setup_section(experiment: Experiment) -> dict:
    """The data, split, configuration and machine every run shared."""
    corpus, split, device, stats = experiment.corpus, experiment.split, experiment.device, experiment.corpus.stats
    config = asdict(experiment.settings.config)
    config.pop("model")
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


THRESHOLDS = {"min_seeds": MIN_SEEDS, "noise_standard_errors": NOISE_SE}


def seed_suite(experiment: Experiment) -> dict:
    """The classic experiment: every model on every seed, measured and judged against the original report."""
    settings = experiment.settings
    probe_batch = probe_examples(experiment.split.test)
    runs, flows, errors = measure_seed_runs(experiment, probe_batch)
    labels = experiment.labels
    results = {
        m: aggregate_model([r for r in runs if r["model"] == m], labels, errors[m]) for m in settings.models
    }
    gradient = {m: aggregate_gradient(flows[m]) for m in settings.models}
    return {
        "setup": {
            "probe": {
                "names": [e.name for e in probe_batch],
                "n_names": len(probe_batch),
                "distances": len(gradient[settings.models[0]]["init"]["mean"]),
            },
        },
        "thresholds": {
            "convergence_fraction": CONVERGENCE_FRACTION,
            "level_tolerance": LEVEL_TOLERANCE,
            "gradient_decades": GRADIENT_DECADES,
        },
        "runs": runs,
        "results": results,
        "gradient": gradient,
        "findings": judge_findings(results, gradient),
    }


def suite_registry() -> dict[str, Callable[[Experiment], dict]]:
    """Every suite ``namelab compare --suite`` runs, in report order.

    A suite is a function of the :class:`Experiment`: it trains (or reuses, through
    :func:`train_run`) its runs and returns its section of the summary, whose keys
    :func:`merge_section` adds to ``summary.json``; ``report.SECTIONS`` holds the
    matching renderer under the same name.
    """
    # insights and leaderboard build on this module, so they are imported when asked for
    from .insights import insights_suite
    from .accuracy import accuracy_suite

    return {"seed": seed_suite, "insights": insights_suite, "accuracy": accuracy_suite}


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
    for name in settings.suites:
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


__all__ = [
    "CompareSettings",
    "default_epochs",
    "describe",
    "epochs_to_fraction",
    "change_std",
    "initial_model",
    "judge_findings",
    "judge_gradient",
    "judge_levels",
    "judge_ranking",
    "paired_difference",
    "merge_section",
    "parse_models",
    "parse_suites",
    "run_record",
    "seed_suite",
    "suite_registry",
    "train_run",
    "verdict_of",
    "predictions_in_order",
    "run_compare",
]
