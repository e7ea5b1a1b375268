"""How findings are judged: numbers from runs, paired differences over seeds, verdicts.

    paired_difference(lstm_accuracies, gru_accuracies)   # mean, standard error, wins, verdict
    judge_findings(results, gradient)                      # the original report's claims, judged

Every threshold lives here, once; the report quotes them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# -- how findings are judged: every threshold in one place, quoted by the report ---------
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
MIN_SEEDS = 3  # fewer paired seeds than this never settle a noisy comparison


NOISE_SE = 2.0  # a mean paired difference under this many standard errors is "within the noise"


CONVERGENCE_FRACTION = 0.95  # convergence = epochs to reach this fraction of the final val accuracy


LEVEL_TOLERANCE = 0.03  # a reported accuracy is reproduced when the measured one is within 3 points


GRADIENT_DECADES = 1.0  # "gating fixes the vanishing gradient" needs ≥10× more gradient reaching far steps


ORIGINAL_ACCURACY = {"lstm": 0.85, "gru": 0.82, "rnn": 0.75}  # training accuracy of one run


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
    return [
        *_accuracy_findings(models),
        *_training_findings(models),
        *_cost_findings(models),
        judge_gradient(
            "Gating fixes the vanishing gradient",
            {m: g["ratio_init"]["values"] for m, g in gradient.items()},
            {m: g["ratio_trained"]["values"] for m, g in gradient.items()},
        ),
    ]


def _per_seed(models: dict[str, dict], field: str) -> dict[str, list]:
    """Each model's per-seed values of one summary field."""
    return {m: s[field]["values"] for m, s in models.items()}


def _accuracy_findings(models: dict[str, dict]) -> list[dict]:
    """How the cells rank by test accuracy, and whether the original's levels are reached."""
    return [
        judge_ranking(
            "Accuracy: LSTM > GRU > RNN",
            "test accuracy, paired by seed (points)",
            _per_seed(models, "test_accuracy"),
            ["lstm", "gru", "rnn"],
            higher_is_better=True,
            scale=100,
            unit=" points",
            key="accuracy_ranking",
        ),
        judge_levels(
            "Accuracy levels: LSTM ~85 %, GRU ~82 %, RNN ~75 % (training accuracy of one run)",
            _per_seed(models, "test_accuracy"),
            _per_seed(models, "final_train_accuracy"),
        ),
    ]


def _training_findings(models: dict[str, dict]) -> list[dict]:
    """How fast and how steadily each cell trains."""
    return [
        judge_ranking(
            "Convergence: LSTM fastest, RNN slowest",
            f"epochs to reach {CONVERGENCE_FRACTION:.0%} of the final validation accuracy (fewer is faster)",
            _per_seed(models, "epochs_to_95"),
            ["lstm", "gru", "rnn"],
            higher_is_better=False,
            unit=" epochs",
            key="convergence",
        ),
        judge_ranking(
            "Stability: LSTM trains most stably, RNN fluctuates most",
            "std of the epoch-to-epoch changes of the validation loss (smaller is steadier)",
            _per_seed(models, "val_loss_change_std"),
            ["lstm", "gru", "rnn"],
            higher_is_better=False,
            digits=4,
            key="stability",
        ),
    ]


def _cost_findings(models: dict[str, dict]) -> list[dict]:
    """What each cell costs: parameters (the same every seed, so an exact comparison) and time."""
    return [
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
            _per_seed(models, "seconds_per_epoch"),
            ["rnn", "gru", "lstm"],
            higher_is_better=False,
            unit=" s",
            key="cost_time",
        ),
    ]


THRESHOLDS = {"min_seeds": MIN_SEEDS, "noise_standard_errors": NOISE_SE}
