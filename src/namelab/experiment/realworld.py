"""The realworld suite: every model the compare trained, scored on real surnames it never saw.

    namelab compare --suite seed,accuracy,realworld       # the cells, the n-gram baseline, --preset best

or from Python, on an :class:`~namelab.experiment.compare.Experiment` whose suites ran::

    section = realworld_suite(experiment)["realworld"]
    section["models"]["gru"]["priors"]["uniform"]["accuracy"]["mean"]

The benchmark (``namelab.data.realworld``, docs/realworld.md) is evaluation only: nothing
here fits on it except what a user's ``--prior estimate`` would fit on the names they
classify. Each model is scored under four priors:

* ``train``: the names folder's shares, today's default;
* ``uniform``: every language alike;
* ``estimate``: EM over every benchmark name, in-domain and out-of-domain alike, because a
  user does not know which of their names are foreign;
* ``true``: the benchmark's own in-domain shares, an upper bound no user has.

Accuracy and macro-F1 are counted on in-domain names (all, and those that do not occur
in the names folder). The unknown-language score (unknown.py) is judged by how well it
ranks out-of-domain names above in-domain ones (AUROC, with ``1 - top probability`` as
the baseline) and by what its default threshold (5 % of validation names) flags.
The scorer is fitted on the split's training names, so every run of one compare holds
the same scorer: it is evaluated once per distinct scorer.

Which runs: the seed suite's (trained here through :func:`train_run` when the seed suite
did not run, reused when it did) and, when the accuracy suite ran in the same compare,
its n-gram baseline, best single model and ``--preset best`` ensemble.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..core.cells import CELLS
from ..core.metrics import classification_metrics
from ..data.corpus import UnusableName, normalize
from ..data.realworld import read_benchmark
from ..inference.base import Predictor
from ..inference.load import load_predictor
from ..inference.priors import RECOMMENDED_PRIOR, TRAIN_PRIOR, estimate_prior, resolve_prior
from ..inference.unknown import DEFAULT_FALSE_ALARM
from ..runs.checkpoint import METRICS, read_json, run_state
from ..train.presets import MEMBERS
from .accuracy import NGRAM
from .compare import Experiment, run_name, train_run
from .stats import describe

TRUE_PRIOR = "true"
PRIOR_ROWS = (TRAIN_PRIOR, "uniform", "estimate", TRUE_PRIOR)
ROC_POINTS = 200  # vertices kept per ROC curve in the summary: enough to draw it, small in JSON
UNKNOWN_META = "unknown.json"

# The targets, judged on the focus model (--preset best, or the best model present).
TARGET_ACCURACY = 0.55
TARGET_MACRO_F1 = 0.55
TARGET_AUROC = 0.80
TARGET_FLAGGED_TEST = 0.05


# -- ranking measures ----------------------------------------------------------------------


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of the ranks they span."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The chance that a positive scores above a negative, a tie counting one half.

    Mann-Whitney: ``(R+ - n+(n+ + 1)/2) / (n+ n-)``, ``R+`` the sum of the positives'
    :func:`average_ranks` among all scores.
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.size} scores but {positive.size} labels; give one label per score")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative name")
    if not np.isfinite(scores).all():
        raise ValueError("the scores hold NaN or infinite values")
    rank_sum = float(average_ranks(scores)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_curve(scores: Sequence[float], positive: Sequence[bool], points: int = ROC_POINTS) -> dict:
    """ROC vertices ``{"fpr": [...], "tpr": [...]}`` from (0, 0) to (1, 1), one per distinct threshold.

    Tied scores move both rates at once (a diagonal step), as the tie-aware AUROC counts
    them. More than ``points`` vertices are thinned to ``points`` evenly spaced ones, ends kept.
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    ordered, hits = scores[order], positive[order]
    last_of_group = np.r_[ordered[1:] != ordered[:-1], True]  # the threshold falls after these
    tp = np.cumsum(hits)[last_of_group]
    fp = np.cumsum(~hits)[last_of_group]
    fpr = np.r_[0.0, fp / max(int((~positive).sum()), 1)]
    tpr = np.r_[0.0, tp / max(int(positive.sum()), 1)]
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


# -- the benchmark, read against the models' labels ------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    """The benchmark's usable rows as arrays: what the models read, and what is known about each name."""

    path: str
    names: list[str]  # normalized, as the models read them
    languages: list[str]
    in_domain: np.ndarray  # (N,) bool
    targets: np.ndarray  # (N,) class index of an in-domain name, -1 for an out-of-domain one
    in_folder: np.ndarray  # (N,) bool: the name (case-folded) occurs in the names folder
    unusable: int  # rows without letters, skipped


def load_benchmark(path: Path | str | None, labels: Sequence[str], folder_names: set[str]) -> Benchmark:
    """Read the benchmark CSV (None: the packaged one) and index its in-domain names by ``labels``.

    ``folder_names`` are the names folder's normalized, case-folded names. An in-domain row
    whose language the models do not know is an error: its name could never be right.
    """
    rows = read_benchmark(path)
    names, languages, in_domain, targets, in_folder = [], [], [], [], []
    unusable = 0
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({row.language for row in rows if row.in_domain and row.language not in index})
    if unknown:
        raise ValueError(
            f"the benchmark {path or 'realworld.csv'} marks {', '.join(unknown)} in-domain, but the models know only "
            f"{', '.join(labels)}; mark those rows in_domain=false or train on a folder with those languages"
        )
    for row in rows:
        try:
            text = normalize(row.name)
        except UnusableName:
            unusable += 1
            continue
        names.append(text)
        languages.append(row.language)
        in_domain.append(row.in_domain)
        targets.append(index[row.language] if row.in_domain else -1)
        in_folder.append(text.casefold() in folder_names)
    if not any(in_domain) or all(in_domain):
        raise ValueError(
            f"the benchmark {path or 'realworld.csv'} needs in-domain and out-of-domain names; "
            f"it has {sum(in_domain)} in-domain of {len(names)} usable rows"
        )
    return Benchmark(
        str(path or "realworld.csv (packaged)"),
        names,
        languages,
        np.asarray(in_domain, dtype=bool),
        np.asarray(targets, dtype=np.int64),
        np.asarray(in_folder, dtype=bool),
        unusable,
    )


def true_prior(bench: Benchmark, num_classes: int) -> torch.Tensor:
    """The in-domain names' language shares: the prior no user knows, the upper bound of the re-weighting."""
    counts = np.bincount(bench.targets[bench.in_domain], minlength=num_classes).astype(float)
    return torch.tensor(counts / counts.sum(), dtype=torch.float64)


# -- scoring one run ---------------------------------------------------------------------------


def score_run(predictor: Predictor, bench: Benchmark, labels: Sequence[str]) -> dict:
    """One run on the benchmark: in-domain accuracy and macro-F1 per prior, and its top-probability AUROC."""
    probs = predictor.probabilities(bench.names).double()
    domain = bench.in_domain
    unseen = domain & ~bench.in_folder
    targets = bench.targets
    estimated, iterations = estimate_prior(probs, predictor.train_prior)  # every name: foreign ones unknown to a user
    goals = {
        TRAIN_PRIOR: None,
        "uniform": resolve_prior("uniform", labels, predictor.train_prior),
        "estimate": estimated,
        TRUE_PRIOR: true_prior(bench, len(labels)),
    }
    priors = {}
    for prior, target in goals.items():
        predicted = predictor.with_prior(probs, target).argmax(dim=1).numpy()
        full = classification_metrics(targets[domain], predicted[domain], labels)
        fresh = classification_metrics(targets[unseen], predicted[unseen], labels) if unseen.any() else None
        priors[prior] = {
            "accuracy": full["accuracy"],
            "macro_f1": full["macro_f1"],
            "unseen_accuracy": fresh["accuracy"] if fresh else None,
            "unseen_macro_f1": fresh["macro_f1"] if fresh else None,
            "recall": {label: row["recall"] for label, row in full["per_class"].items() if row["support"]},
        }
    doubt = (1.0 - probs.max(dim=1).values).numpy()
    return {
        "priors": priors,
        "estimated_prior": dict(zip(labels, estimated.tolist())),
        "em_iterations": iterations,
        "top_probability_auroc": auroc(doubt, ~domain),
        "doubt": doubt,  # kept for the focus model's ROC curve, dropped from the summary
    }


def detect_unknown(predictor: Predictor, bench: Benchmark, test_names: Sequence[str]) -> dict | None:
    """How the run's unknown-language score separates out-of-domain names (None for a run without a scorer)."""
    if predictor.unknown is None:
        return None
    scores = predictor.unknown.scorer.score(bench.names).double().numpy()
    threshold = predictor.unknown.threshold(DEFAULT_FALSE_ALARM)
    flagged = scores > threshold
    test_flagged = predictor.unknown.scorer.score(list(test_names)).double().numpy() > threshold
    per_language = {}
    for language in dict.fromkeys(bench.languages):
        rows = np.asarray([lang == language for lang in bench.languages])
        per_language[language] = {
            "n": int(rows.sum()),
            "in_domain": bool(bench.in_domain[rows][0]),
            "flagged": float(flagged[rows].mean()),
        }
    return {
        "auroc": auroc(scores, ~bench.in_domain),
        "roc": roc_curve(scores, ~bench.in_domain),
        "false_alarm": DEFAULT_FALSE_ALARM,
        "threshold": threshold,
        "flagged_in_domain": float(flagged[bench.in_domain].mean()),
        "flagged_test": float(test_flagged.mean()) if len(test_flagged) else None,
        "caught_out_of_domain": float(flagged[~bench.in_domain].mean()),
        "per_language": per_language,
    }


def _scorer_key(run_dir: Path) -> str:
    """What identifies a run's scorer: its tables' checksum (equal for every run of one split)."""
    meta = run_dir / UNKNOWN_META
    return read_json(meta).get("sha256", str(run_dir)) if meta.is_file() else str(run_dir)


# -- which runs ------------------------------------------------------------------------------


def experiment_runs(experiment: Experiment) -> dict[str, tuple[str, list[Path]]]:
    """``{key: (title, run folders over seeds)}`` of every model this compare trained, in report order.

    The seed suite's runs go through :func:`train_run`: reused when the seed suite ran (or
    a finished run of the same settings is on disk), trained otherwise. The accuracy
    suite's runs are read only when that suite is part of this compare.
    """
    settings, runs_dir = experiment.settings, experiment.out / "runs"
    seeds = range(settings.seeds)
    found: dict[str, tuple[str, list[Path]]] = {}
    for model in settings.models:
        folders = []
        for seed in seeds:
            name = run_name(model, seed)
            train_run(experiment, replace(settings.config, cell=model, seed=seed), name)
            folders.append(runs_dir / name)
        found[model] = (CELLS[model].title, folders)
    if "accuracy" in settings.suites:
        found[NGRAM] = ("char 1–4-gram logistic regression", [runs_dir / NGRAM])
        singles = []
        for seed in seeds:
            members = sorted(
                p for p in (runs_dir / f"best-seed{seed}" / MEMBERS).glob("*") if p.is_dir() and p.name != NGRAM
            )
            singles += members[:1]
        found["best_single"] = ("best single (the --preset best recurrent member)", singles)
        found["best_ensemble"] = ("--preset best", [runs_dir / f"best-seed{seed}" for seed in seeds])
    for key, (_, folders) in found.items():
        # a recurrent run is complete once its manifest is written; the n-gram and ensemble folders have none
        missing = [str(f) for f in folders if run_state(f) != "complete" and not (f / METRICS).is_file()]
        if missing or not folders:
            raise RuntimeError(
                f"the realworld suite found no finished run for {key} ({', '.join(missing) or 'no folder'}); "
                "run the suites that train it in the same compare (--suite seed,accuracy,realworld)"
            )
    return found


# -- the suite -------------------------------------------------------------------------------


def _pooled(results: list[dict], labels: Sequence[str]) -> dict:
    priors = {}
    for prior in PRIOR_ROWS:
        rows = [r["priors"][prior] for r in results]
        recall_labels = [label for label in labels if label in rows[0]["recall"]]
        priors[prior] = {
            **{
                f: describe([row[f] for row in rows])
                for f in ("accuracy", "macro_f1", "unseen_accuracy", "unseen_macro_f1")
            },
            "recall": {label: float(np.mean([row["recall"][label] for row in rows])) for label in recall_labels},
        }
    return {
        "priors": priors,
        "top_probability_auroc": describe([r["top_probability_auroc"] for r in results]),
        "estimated_prior": {label: float(np.mean([r["estimated_prior"][label] for r in results])) for label in labels},
        "em_iterations": [r["em_iterations"] for r in results],
    }


def _focus(models: dict) -> str:
    """--preset best when present, else the model with the best in-domain accuracy under the recommended prior."""
    if "best_ensemble" in models:
        return "best_ensemble"
    return max(models, key=lambda k: models[k]["priors"][RECOMMENDED_PRIOR]["accuracy"]["mean"])


def _target(what: str, measured: float | None, goal: float, at_least: bool) -> dict:
    if measured is None:
        return {"target": what, "goal": goal, "measured": None, "met": None, "gap": None}
    met = measured >= goal if at_least else measured <= goal
    return {"target": what, "goal": goal, "measured": measured, "met": met, "gap": measured - goal}


def judge_targets(focus: dict, unknown: dict | None) -> list[dict]:
    """The issue's targets on the focus model: met or missed, and the gap (measured - goal)."""
    recommended = focus["priors"][RECOMMENDED_PRIOR]
    return [
        _target(
            f"in-domain accuracy, --prior {RECOMMENDED_PRIOR}", recommended["accuracy"]["mean"], TARGET_ACCURACY, True
        ),
        _target(
            f"in-domain macro-F1, --prior {RECOMMENDED_PRIOR}", recommended["macro_f1"]["mean"], TARGET_MACRO_F1, True
        ),
        _target("unknown-language AUROC", unknown["auroc"] if unknown else None, TARGET_AUROC, True),
        _target(
            "test-split names flagged unknown (5 % threshold)",
            unknown["flagged_test"] if unknown else None,
            TARGET_FLAGGED_TEST,
            False,
        ),
    ]


def run_realworld_suite(experiment: Experiment, benchmark: Path | str | None = None) -> dict:
    """Score every run of the compare on the benchmark; returns the summary section (module docstring)."""
    started = time.perf_counter()
    folder_names = {name.casefold() for name, _ in experiment.corpus.pairs}
    bench = load_benchmark(benchmark, experiment.labels, folder_names)
    runs = experiment_runs(experiment)
    experiment.log(
        f"== realworld suite: {len(runs)} model(s) on {len(bench.names)} benchmark names "
        f"({int(bench.in_domain.sum())} in-domain)"
    )
    # Runs fitted on the same split share one unknown-language scorer: each is evaluated once.
    detections: dict[str, dict | None] = {}
    models, doubts, scorer_of = {}, {}, {}
    for key, (title, folders) in runs.items():
        scorer_of[key] = _scorer_key(folders[0])
        models[key], doubts[key] = _score_model(experiment, title, folders, bench, scorer_of[key], detections)
        experiment.log(
            f"   {title}: in-domain accuracy "
            + ", ".join(f"{p} {models[key]['priors'][p]['accuracy']['mean']:.3f}" for p in PRIOR_ROWS)
        )
    focus = _focus(models)
    unknown = detections[scorer_of[focus]]
    if unknown is not None:
        unknown = {
            **unknown,
            "baseline_auroc": models[focus]["top_probability_auroc"]["mean"],
            "baseline_roc": roc_curve(doubts[focus], ~bench.in_domain),
            "same_scorer": [k for k in models if scorer_of[k] == scorer_of[focus]],
        }
    return {
        "benchmark": _benchmark_facts(bench),
        "priors": list(PRIOR_ROWS),
        "recommended_prior": RECOMMENDED_PRIOR,
        "seeds": list(range(experiment.settings.seeds)),
        "models": models,
        "focus": focus,
        "per_language": _per_language(bench, models[focus], unknown),
        "unknown": unknown and {k: v for k, v in unknown.items() if k != "per_language"},
        "targets": judge_targets(models[focus], unknown),
        "seconds": time.perf_counter() - started,
    }


def _score_model(
    experiment: Experiment,
    title: str,
    folders: list[Path],
    bench: Benchmark,
    scorer: str,
    detections: dict[str, dict | None],
) -> tuple[dict, np.ndarray]:
    """One model's runs (its seeds) scored and pooled, and the first run's doubt per name (the ROC baseline).

    The first run also judges the unknown-language ``scorer`` into ``detections``, unless a model
    before this one shares it.
    """
    results = []
    for folder in folders:
        predictor = load_predictor(folder)
        results.append(score_run(predictor, bench, experiment.labels))
        if scorer not in detections:
            test_names = [e.name for e in experiment.split.test]
            detections[scorer] = detect_unknown(predictor, bench, test_names)
    doubt = results[0].pop("doubt")
    for result in results[1:]:
        result.pop("doubt")
    model = {
        "title": title,
        "runs": [str(f.relative_to(experiment.out)) for f in folders],
        # the names folder's own test split, beside the real-world figures (train prior, as trained)
        "test_accuracy": describe([read_json(f / METRICS)["accuracy"] for f in folders]),
        "test_macro_f1": describe([read_json(f / METRICS)["macro_f1"] for f in folders]),
        **_pooled(results, experiment.labels),
    }
    return model, doubt


def _per_language(bench: Benchmark, focus: dict, unknown: dict | None) -> dict:
    """Each benchmark language: its size, the focus model's recall before (train prior) and after
    (recommended prior) for an in-domain one, and the share the unknown-language score flags."""
    per_language = {}
    recall_before = focus["priors"][TRAIN_PRIOR]["recall"]
    recall_after = focus["priors"][RECOMMENDED_PRIOR]["recall"]
    for language in dict.fromkeys(bench.languages):
        rows = np.asarray([lang == language for lang in bench.languages])
        in_domain = bool(bench.in_domain[rows][0])
        per_language[language] = {
            "n": int(rows.sum()),
            "in_domain": in_domain,
            "before": recall_before.get(language) if in_domain else None,
            "after": recall_after.get(language) if in_domain else None,
            "flagged": unknown["per_language"][language]["flagged"] if unknown else None,
        }
    return per_language


def _benchmark_facts(bench: Benchmark) -> dict:
    """What the benchmark holds, counted: rows, in- and out-of-domain names and languages."""
    return {
        "path": bench.path,
        "rows": len(bench.names),
        "unusable": bench.unusable,
        "in_domain": int(bench.in_domain.sum()),
        "out_of_domain": int((~bench.in_domain).sum()),
        "in_domain_unseen": int((bench.in_domain & ~bench.in_folder).sum()),
        "in_domain_languages": len(set(np.asarray(bench.languages)[bench.in_domain])),
        "out_of_domain_languages": len(set(np.asarray(bench.languages)[~bench.in_domain])),
    }


def realworld_suite(experiment: Experiment) -> dict:
    """The compare suite ``realworld``: :func:`run_realworld_suite` on the settings' benchmark (None: the packaged one)."""
    return {"realworld": run_realworld_suite(experiment, experiment.settings.benchmark)}
