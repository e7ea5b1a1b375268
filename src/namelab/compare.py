"""The experiment: every cell × every seed on one split, measured, then judged against the original report.

    namelab compare                                  # rnn, lstm, gru × 3 seeds -> reports/compare
    namelab compare --quick --data-dir D --out /tmp/c   # 2 epochs, 1 seed, small cells: a smoke test

or from Python::

    settings = CompareSettings(models=("rnn", "lstm", "gru"), seeds=3, config=TrainConfig(), out=Path("reports/c"))
    summary = run_compare(settings, data_dir)
    [(f["claim"], f["verdict"]) for f in summary["findings"]]

Every run trains on the same name-disjoint split (``split_seed`` fixed) with the same
budget; only the training seed varies, so runs with the same seed form pairs and
rankings are judged on paired differences. Each run is a normal run folder
(``OUT/runs/<model>-seed<k>``) usable by ``namelab predict`` and ``namelab evaluate``.
``OUT/summary.json`` holds every number the report shows; :mod:`namelab.report`
draws the figures and writes ``report.html`` and ``report.md`` from it alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .cells import CELLS
from .checkpoint import write_json
from .data import Corpus, Example, Split
from .download import dataset_checksum
from .leaderboard import run_accuracy_suite
from .model import CharClassifier, ModelConfig
from .predict import Predictor
from .probe import gradient_flow, probe_examples
from .report import fmt_mean_std, model_title, write_report
from .train import TrainConfig, cpu_name, environment, resolve_device, train

SCHEMA = 1
QUICK_EPOCHS = 2
QUICK_SEEDS = 1
QUICK_HIDDEN_SIZE = 32
DEFAULT_SEEDS = 3
DEFAULT_MODELS = ("rnn", "lstm", "gru")

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
    accuracy: bool = False  # also the accuracy suite (leaderboard.py) on the same split and seeds

    def __post_init__(self) -> None:
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
    """Predicted class of every example and its probability, in the examples' order.

    ``predict_examples`` returns predictions in batch (length-sorted) order; Predictor
    batches by length too but puts every row back where its name was.
    """
    probabilities = Predictor(model, vocab, labels).probabilities([e.name for e in examples])
    confidence, predicted = probabilities.max(dim=1)
    return predicted.tolist(), confidence.tolist()


def initial_model(config: TrainConfig, corpus: Corpus) -> CharClassifier:
    """The model ``train(config, corpus)`` starts from: train seeds torch, then builds the model."""
    torch.manual_seed(config.seed)
    model_config = ModelConfig.from_run_config(asdict(config), len(corpus.vocab), corpus.num_classes)
    return CharClassifier.from_config(model_config)


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


def _difference_text(
    first: str, second: str, pair: dict, scale: float, unit: str, digits: int, verdict: str = ""
) -> str:
    """``LSTM − GRU: +1.20 points, std 0.40, t = 5.2, 3/3 seeds in favour → holds``."""
    if pair["mean"] is None:
        return f"{model_title(first)} vs {model_title(second)}: {pair['reason']}"
    if not verdict:
        verdict = {"a": "holds", "b": "reversed", "noise": f"within the noise ({pair['reason']})"}[pair["outcome"]]
    difference = f"{round(pair['mean'] * scale, digits) + 0.0:+,.{digits}f}{unit}"  # + 0.0: no "-0.00"
    if pair["reason"] == "exact quantity":
        return f"{model_title(first)} − {model_title(second)}: {difference} → {verdict} (exact)"
    parts = [difference]
    if pair["std"] is not None:
        parts.append(f"std {pair['std'] * scale:.{digits}f}")
    if pair["t"] is not None:
        parts.append(f"t = {pair['t']:.1f}")
    parts.append(f"{pair['positive']}/{pair['n']} seeds in favour")
    return f"{model_title(first)} − {model_title(second)}: {', '.join(parts)} → {verdict}"


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
    Models absent from ``values`` are left out of the claim.
    """
    present = [m for m in order if m in values]
    pairs, lines = [], []
    for i, first in enumerate(present):
        for second in present[i + 1 :]:
            better, worse = (values[first], values[second]) if higher_is_better else (values[second], values[first])
            pair = paired_difference(better, worse, exact=exact)
            shown = dict(pair)
            if not higher_is_better and pair["mean"] is not None:
                # Shown as first − second (negative = the claim holds); "in favour" still counts seeds agreeing.
                shown.update(mean=-pair["mean"], t=None if pair["t"] is None else -pair["t"])
            pairs.append({"first": first, "second": second, **pair})
            lines.append(_difference_text(first, second, shown, scale, unit, digits))
    outcomes = [p["outcome"] for p in pairs]
    if not pairs:
        verdict, lines = INCONCLUSIVE, ["not measured: the claim needs at least two of " + ", ".join(order)]
    elif all(o == "a" for o in outcomes):
        verdict = SUPPORTED
    elif any(o == "b" for o in outcomes):
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    means = []
    for m in present:
        d = describe(values[m])
        if d["mean"] is not None:
            std = f" ± {d['std'] * scale:.{digits}f}" if d["std"] is not None and not exact else ""
            means.append(f"{model_title(m)} {d['mean'] * scale:,.{digits}f}{std}{unit}")
    return {
        "key": key,
        "claim": claim,
        "measure": measure,
        "verdict": verdict,
        "evidence": "\n".join((["; ".join(means) + "."] if means else []) + [f"{line}." for line in lines]),
        "pairs": pairs,
    }


def judge_levels(
    claim: str, test_accuracy: dict[str, Sequence[float]], train_accuracy: dict[str, Sequence[float]]
) -> dict:
    """Are the reported accuracies reproduced (within :data:`LEVEL_TOLERANCE`) by the test accuracy?

    Supported: every model's mean within the tolerance (with at least :data:`MIN_SEEDS`
    seeds). Not supported: some model's mean is farther than the tolerance plus
    :data:`NOISE_SE` standard errors. Otherwise inconclusive. The final-epoch training
    accuracy, the quantity the original report plotted, is shown beside it.
    """
    rows, within, outside, n_min = [], [], [], None
    for model, reported in ORIGINAL_ACCURACY.items():
        if model not in test_accuracy:
            continue
        d = describe(test_accuracy[model])
        tr = describe(train_accuracy[model])
        n = len(d["values"])
        n_min = n if n_min is None else min(n_min, n)
        se = d["std"] / math.sqrt(n) if d["std"] is not None else 0.0
        gap = d["mean"] - reported
        within.append(abs(gap) <= LEVEL_TOLERANCE)
        outside.append(abs(gap) > LEVEL_TOLERANCE + NOISE_SE * se and n >= MIN_SEEDS)
        rows.append(
            f"{model_title(model)} reported {reported * 100:.0f}, test {fmt_mean_std(d, 100)} "
            f"({gap * 100:+.1f} points), final-epoch training {fmt_mean_std(tr, 100)}"
        )
    if not rows:
        verdict, rows = INCONCLUSIVE, ["not measured: none of lstm, gru, rnn was trained"]
    elif any(outside):
        verdict = NOT_SUPPORTED
    elif all(within) and n_min >= MIN_SEEDS:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    note = "" if (n_min or 0) >= MIN_SEEDS else f"\nFewer than {MIN_SEEDS} seeds: no verdict on levels."
    return {
        "key": "accuracy_levels",
        "claim": claim,
        "measure": f"mean test accuracy within ±{LEVEL_TOLERANCE * 100:.0f} points of the reported value",
        "verdict": verdict,
        "evidence": "\n".join(f"{row}." for row in rows) + note,
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
    by less than the threshold). Otherwise inconclusive. The ratios at initialization
    are shown beside them.
    """
    gated = [m for m in ("lstm", "gru") if m in ratios_trained]
    parts = []
    for model in [m for m in ("rnn", "lstm", "gru") if m in ratios_trained]:
        parts.append(
            f"{model_title(model)} ratio at init {_geo(ratios_init[model])}, trained {_geo(ratios_trained[model])}"
        )
    if "rnn" not in ratios_trained or not gated:
        return {
            "key": "vanishing_gradient",
            "claim": claim,
            "measure": "far/end gradient-norm ratio, gated cells vs RNN",
            "verdict": INCONCLUSIVE,
            "evidence": "\n".join([f"{part}." for part in parts] + ["Not measured: needs the RNN and a gated cell."]),
            "pairs": [],
        }
    log_rnn = [_log10(r) for r in ratios_trained["rnn"]]
    pairs, lines, statuses = [], [], []
    for model in gated:
        log_gated = [_log10(r) for r in ratios_trained[model]]
        pair = paired_difference(log_gated, log_rnn)
        if pair["outcome"] == "a" and pair["mean"] >= GRADIENT_DECADES:
            status = "holds"
        elif pair["outcome"] == "b" or pair["outcome"] == "a":
            status = "fails"  # reversed, or clearly above but by less than the threshold
        else:
            status = "noise"
        statuses.append(status)
        pairs.append({"first": model, "second": "rnn", **pair, "status": status})
        shown = {"holds": "holds", "fails": f"fails (needs ≥ {GRADIENT_DECADES:g} decade(s) more than the RNN)"}
        verdict = shown.get(status, f"within the noise ({pair['reason']})")
        lines.append(_difference_text(model, "rnn", pair, 1.0, " decades", 2, verdict))
    if all(s == "holds" for s in statuses):
        verdict = SUPPORTED
    elif any(s == "fails" for s in statuses):
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return {
        "key": "vanishing_gradient",
        "claim": claim,
        "measure": (
            f"log10 of (‖dL/dh‖ at the farthest probed step / at the last step) after training, "
            f"gated minus RNN, paired by seed; needs ≥ {GRADIENT_DECADES:g} decade(s)"
        ),
        "verdict": verdict,
        "evidence": "\n".join([f"{part}." for part in parts] + [f"{line}." for line in lines]),
        "pairs": pairs,
    }


def _log10(ratio: float) -> float:
    # A recurrence cut to exactly zero gives a zero ratio: call it 300 decades down, not an error.
    return math.log10(max(ratio, 1e-300))


def _geo(values: Sequence[float]) -> str:
    """Geometric mean of ratios, two significant digits."""
    return f"{10 ** float(np.mean([_log10(v) for v in values])):.2g}"


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


def _curves(histories: list[list[dict]]) -> dict:
    """Per-epoch mean, min, max and std over seeds of every history field."""
    epochs = min(len(h) for h in histories)
    out: dict = {"epoch": list(range(1, epochs + 1))}
    for field in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        array = np.asarray([[row[field] for row in h[:epochs]] for h in histories], dtype=float)  # (S, E)
        out[field] = {
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


def run_compare(
    settings: CompareSettings,
    data_dir: Path,
    *,
    corpus: Corpus | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every model on every seed, measure, judge, and write the report; returns the summary."""
    started = time.perf_counter()
    corpus = corpus or Corpus.from_folder(data_dir)
    base = settings.config
    device = resolve_device(base.device)
    split: Split = corpus.split(seed=base.split_seed)
    if not split.test:
        raise ValueError("the dataset is too small to leave names for the test split; add names")
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    probe_batch = probe_examples(split.test)
    labels = corpus.labels
    seeds = list(range(settings.seeds))
    total_runs = len(settings.models) * len(seeds)
    runs: list[dict] = []
    gradient_runs: dict[str, dict[str, list]] = {m: {"init": [], "trained": []} for m in settings.models}
    errors: dict[str, dict[tuple[int, int], dict[str, list[float]]]] = {m: {} for m in settings.models}
    for seed in seeds:  # seed-major: an interrupted compare still has every model on the first seeds
        for model_name in settings.models:
            config = replace(base, model=model_name, seed=seed)
            run_dir = out / "runs" / run_name(model_name, seed)
            log(f"== run {len(runs) + 1}/{total_runs}: {model_name} seed {seed} -> {run_dir}")
            init = initial_model(config, corpus).to(device)
            gradient_runs[model_name]["init"].append(gradient_flow(init, probe_batch, corpus.vocab).norms.tolist())
            del init
            result = train(config, corpus, run_dir, data_dir=data_dir, split=split, log=log)
            gradient_runs[model_name]["trained"].append(
                gradient_flow(result.model, probe_batch, corpus.vocab).norms.tolist()
            )
            predicted, confidence = predictions_in_order(result.model, split.test, corpus.vocab, labels)
            for example, guess, probability in zip(split.test, predicted, confidence):
                if guess != example.label:
                    names = errors[model_name].setdefault((example.label, guess), {})
                    names.setdefault(example.name, []).append(probability)
            recomputed = np.zeros((len(labels), len(labels)), dtype=np.int64)
            np.add.at(recomputed, ([e.label for e in split.test], predicted), 1)
            matches = recomputed.tolist() == result.metrics["confusion"]
            if not matches:
                log(f"warning: {run_dir}: predictions by name differ from metrics.json; examples may not match counts")
            history = result.history
            val_accuracy = [row["val_accuracy"] for row in history]
            runs.append(
                {
                    "model": model_name,
                    "seed": seed,
                    "run_dir": str(Path("runs") / run_name(model_name, seed)),
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
                    "predictions_match_metrics": matches,
                    "history": history,
                    "per_class": result.metrics["per_class"],
                    "confusion": result.metrics["confusion"],
                }
            )
            done = time.perf_counter() - started
            log(
                f"   test accuracy {result.metrics['accuracy']:.4f}  macro-F1 {result.metrics['macro_f1']:.4f}  "
                f"elapsed {done:.0f}s, about {done / len(runs) * (total_runs - len(runs)):.0f}s to go"
            )

    current = {run_name(r["model"], r["seed"]) for r in runs}
    stale = sorted(p.name for p in (out / "runs").iterdir() if p.is_dir() and p.name not in current)
    if stale:
        log(f"note: {out / 'runs'} also holds {', '.join(stale)}, left from an earlier compare; this report ignores them")

    models: dict[str, dict] = {}
    for model_name in settings.models:
        mine = [r for r in runs if r["model"] == model_name]
        confusion = np.sum([np.asarray(r["confusion"]) for r in mine], axis=0)
        per_class = {}
        for label in labels:
            rows = [r["per_class"][label] for r in mine]
            per_class[label] = {
                "precision": float(np.mean([row["precision"] for row in rows])),
                "recall": float(np.mean([row["recall"] for row in rows])),
                "f1": float(np.mean([row["f1"] for row in rows])),
                "f1_std": float(np.std([row["f1"] for row in rows], ddof=1)) if len(rows) > 1 else None,
                "support": rows[0]["support"],
            }
        models[model_name] = {
            "title": model_title(model_name),
            "seeds": [r["seed"] for r in mine],
            "parameters": mine[0]["parameters"],
            **{
                field: describe([r[field] for r in mine])
                for field in (
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
            },
            "best_epoch": [r["best_epoch"] for r in mine],
            "curves": _curves([r["history"] for r in mine]),
            "per_class": per_class,
            "confusion": confusion.tolist(),
            "confused_pairs": _confusions(confusion, labels, errors[model_name], len(mine)),
        }

    gradient: dict[str, dict] = {}
    for model_name, flows in gradient_runs.items():
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
        gradient[model_name] = entry

    base_dict = asdict(base)
    base_dict.pop("model")
    base_dict.pop("seed")
    sizes = split.sizes()
    stats = corpus.stats
    versions = environment()
    import matplotlib

    versions.update(numpy=np.__version__, matplotlib=matplotlib.__version__)
    summary = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "models": list(settings.models),
        "seeds": seeds,
        "labels": labels,
        "setup": {
            "data_dir": str(data_dir),
            "dataset_sha256": dataset_checksum(data_dir),
            "raw_counts": stats.raw_counts,
            "dedup_counts": stats.dedup_counts,
            "raw_total": sum(stats.raw_counts.values()),
            "dedup_total": len(corpus.pairs),
            "duplicates_removed": sum(stats.raw_counts.values()) - len(corpus.pairs) - len(stats.skipped_lines),
            "skipped_lines": len(stats.skipped_lines),
            "names_in_several_languages": len(stats.shared_names),
            "split": {**sizes, "split_seed": base.split_seed},
            "test_counts": {label: int(sum(1 for e in split.test if e.label == i)) for i, label in enumerate(labels)},
            "config": base_dict,
            "versions": versions,
            "device": str(device),
            "cpu": cpu_name(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "probe": {
                "names": [e.name for e in probe_batch],
                "n_names": len(probe_batch),
                "distances": len(gradient[settings.models[0]]["init"]["mean"]),
            },
        },
        "thresholds": {
            "min_seeds": MIN_SEEDS,
            "noise_standard_errors": NOISE_SE,
            "convergence_fraction": CONVERGENCE_FRACTION,
            "level_tolerance": LEVEL_TOLERANCE,
            "gradient_decades": GRADIENT_DECADES,
        },
        "runs": runs,
        "results": models,
        "gradient": gradient,
    }
    summary["findings"] = judge_findings(models, gradient)
    if settings.accuracy:
        summary["accuracy"] = run_accuracy_suite(
            base, corpus, split, out, seeds, data_dir=data_dir, seed_models=settings.models, quick=settings.quick, log=log
        )
    # Measured before drawing, so the report can show it and summary.json holds the same number.
    summary["setup"]["total_seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    summary["files"] = write_report(summary, out)
    write_json(out / "summary.json", _finite(summary))
    log(f"report written to {out / 'report.html'} and {out / 'report.md'} ({time.perf_counter() - started:.0f}s)")
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
    "describe",
    "epochs_to_fraction",
    "change_std",
    "initial_model",
    "judge_findings",
    "judge_gradient",
    "judge_levels",
    "judge_ranking",
    "paired_difference",
    "parse_models",
    "predictions_in_order",
    "run_compare",
]
