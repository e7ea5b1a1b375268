"""``namelab compare --suite seed,accuracy,realworld``: every model scored on a (here tiny, fake) real-world benchmark.

    PYTHONPATH=src .venv/bin/python -m pytest tests/test_realworld_suite.py -q

One quick compare on a tiny separable folder and a hand-made benchmark runs once per module.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from helpers import SEPARABLE_ALPHABETS, make_names_folder, one_thread, separable_names

import namelab.experiment.compare as compare_module
from namelab.experiment.compare import CompareSettings
from namelab.experiment.realworld import auroc, average_ranks, load_benchmark, roc_curve
from namelab.experiment.runner import run_compare
from namelab.report.realworld import advice
from namelab.runs.config import TrainConfig

FOREIGN_LETTERS = "fhjpvwyz"  # in none of the separable alphabets: every name of them is "unknown"


def write_benchmark(path: Path, folder: dict[str, list[str]], language: str = "Alpha") -> dict:
    """A benchmark CSV: mostly Alpha (far from the folder's shares), a few names the folder holds, foreign names."""
    rng = random.Random(3)
    rows, seen = [], {n.casefold() for names in folder.values() for n in names}
    counts = {language: 30, "Beta": 4, "Gamma": 4}
    for lang, count in counts.items():
        alphabet = SEPARABLE_ALPHABETS[lang]
        fresh: set[str] = set()
        while len(fresh) < count:
            name = "".join(rng.choice(alphabet) for _ in range(rng.randint(4, 8))).capitalize()
            if name.casefold() not in seen:
                fresh.add(name)
        rows += [(name, lang, "true", "xx_XX") for name in sorted(fresh)]
    in_folder = [folder["Beta"][0], folder["Gamma"][0].upper()]  # case-insensitive match with the folder
    rows += [(in_folder[0], "Beta", "true", "xx_XX"), (in_folder[1], "Gamma", "true", "xx_XX")]
    foreign: set[str] = set()
    while len(foreign) < 20:
        foreign.add("".join(rng.choice(FOREIGN_LETTERS) for _ in range(rng.randint(4, 8))).capitalize())
    rows += [(name, "Zeta", "false", "zz_ZZ") for name in sorted(foreign)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("name", "language", "in_domain", "source"))
        writer.writerows(rows)
    return {"in_domain": sum(counts.values()) + 2, "out_of_domain": len(foreign), "in_folder": 2}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory) -> dict:
    names = separable_names(per_class=30)
    names["Alpha"] = names["Alpha"][:10]  # train prior far from the benchmark's (Alpha 30 of 40)
    data = make_names_folder(tmp_path_factory.mktemp("names"), names)
    bench = tmp_path_factory.mktemp("bench") / "bench.csv"
    counts = write_benchmark(bench, names)
    out = tmp_path_factory.mktemp("compare") / "report"
    config = TrainConfig(epochs=2, hidden_size=8, batch_size=8, lr=0.03, device="cpu")
    settings = CompareSettings(
        models=("gru",),
        seeds=2,
        config=config,
        out=out,
        quick=True,
        suites=("seed", "accuracy", "realworld"),
        benchmark=bench,
    )
    trainings = []
    real_train = compare_module.train
    with pytest.MonkeyPatch.context() as patch, one_thread():
        patch.setattr(compare_module, "train", lambda *a, **k: trainings.append(a[0].cell) or real_train(*a, **k))
        summary = run_compare(settings, data, log=lambda line: None)
    return {"summary": summary, "out": out, "counts": counts, "trainings": trainings, "bench": bench, "data": data}


def test_auroc_matches_a_hand_count_with_ties():
    # positives 0.4 and 0.8 against negatives 0.1, 0.35, 0.4: 0.4 wins 2 and ties 1 (2.5), 0.8 wins 3 -> 5.5 / 6
    scores = [0.1, 0.4, 0.35, 0.8, 0.4]
    positive = [False, True, False, True, False]
    assert auroc(scores, positive) == pytest.approx(5.5 / 6)
    assert average_ranks(scores).tolist() == [1.0, 3.5, 2.0, 5.0, 3.5]
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    curve = roc_curve(scores, positive)
    assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(np.sum(np.diff(curve["fpr"]) * (np.array(curve["tpr"][1:]) + np.array(curve["tpr"][:-1])) / 2))
    assert area == pytest.approx(5.5 / 6)  # the tie is a diagonal step: the trapezoid counts it one half
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc([0.1, 0.2], [True, True])


def test_the_section_has_every_model_prior_and_measure(suite_run):
    section = suite_run["summary"]["realworld"]
    counts = suite_run["counts"]
    bench = section["benchmark"]
    assert (bench["in_domain"], bench["out_of_domain"]) == (counts["in_domain"], counts["out_of_domain"])
    assert bench["in_domain_unseen"] == counts["in_domain"] - counts["in_folder"]
    assert list(section["models"]) == ["gru", "ngram", "best_single", "best_ensemble"]
    assert section["priors"] == ["train", "uniform", "estimate", "true"]
    for key, model in section["models"].items():
        seeds = 1 if key == "ngram" else 2
        for prior in section["priors"]:
            row = model["priors"][prior]
            for field in ("accuracy", "macro_f1", "unseen_accuracy", "unseen_macro_f1"):
                assert len(row[field]["values"]) == seeds, (key, prior, field)
                assert 0.0 <= row[field]["mean"] <= 1.0
        assert 0.0 <= model["top_probability_auroc"]["mean"] <= 1.0
    assert section["focus"] == "best_ensemble"
    per_language = section["per_language"]
    assert per_language["Zeta"]["in_domain"] is False and per_language["Zeta"]["before"] is None
    assert per_language["Alpha"]["n"] == 30 and per_language["Alpha"]["after"] is not None
    unknown = section["unknown"]
    assert unknown["auroc"] > 0.9  # foreign letters no training name has
    assert unknown["caught_out_of_domain"] > 0.5
    assert unknown["roc"]["fpr"][-1] == unknown["roc"]["tpr"][-1] == 1.0
    assert 0.0 <= unknown["flagged_test"] <= 1.0
    assert set(unknown["same_scorer"]) == set(section["models"])  # one split, one scorer
    targets = section["targets"]
    assert [t["goal"] for t in targets] == [0.55, 0.55, 0.80, 0.05]
    for target in targets:
        assert target["met"] == (
            target["measured"] >= target["goal"] if target["goal"] != 0.05 else target["measured"] <= target["goal"]
        )
        assert target["gap"] == pytest.approx(target["measured"] - target["goal"])


def test_the_estimated_prior_moves_toward_the_benchmarks_shares(suite_run):
    section = suite_run["summary"]["realworld"]
    for key in ("gru", "best_ensemble"):
        model = section["models"][key]
        estimated = model["estimated_prior"]
        assert estimated["Alpha"] > 0.4  # the folder's train prior gives Alpha 10/70 = 0.14
        assert model["em_iterations"][0] > 1


def test_the_realworld_suite_reuses_the_runs_of_the_suites_before_it(suite_run):
    # seed suite: gru on seeds 0, 1; accuracy suite: the best single on seeds 0, 1; realworld: nothing
    assert suite_run["trainings"] == ["gru", "gru", "gru", "gru"]
    assert suite_run["summary"]["realworld"]["models"]["gru"]["runs"] == ["runs/gru-seed0", "runs/gru-seed1"]


def test_the_report_renders_the_section_and_its_figure(suite_run):
    out = suite_run["out"]
    markdown = (out / "report.md").read_text()
    assert "## Real-world names: the prior and unknown languages" in markdown
    for text in (
        "estimate (EM over all benchmark names)",
        "true shares (upper bound)",
        "--preset best",
        "unknown-language AUROC",
        "What to expect on real names",
        "flagged unknown %",
    ):
        assert text in markdown, text
    assert (out / "figures" / "realworld-roc.png").stat().st_size > 1000
    assert "realworld-roc" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["realworld"]["targets"] == suite_run["summary"]["realworld"]["targets"]
    text = advice(summary["realworld"])
    uniform = summary["realworld"]["models"]["best_ensemble"]["priors"]["uniform"]["accuracy"]["mean"]
    assert f"--prior uniform gave {uniform * 100:.1f} %" in text


def test_an_in_domain_language_the_models_do_not_know_is_a_clear_error(tmp_path):
    path = tmp_path / "bench.csv"
    path.write_text("name,language,in_domain,source\nAeiou,Alpha,true,x\nKlingon,Omega,true,x\nFhj,Zeta,false,x\n")
    with pytest.raises(ValueError, match="marks Omega in-domain"):
        load_benchmark(path, ["Alpha", "Beta"], set())
    path.write_text("name,language,in_domain,source\nAeiou,Alpha,true,x\n")
    with pytest.raises(ValueError, match="in-domain and out-of-domain names"):
        load_benchmark(path, ["Alpha", "Beta"], set())


def test_a_missing_benchmark_file_stops_the_compare_before_any_training(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        CompareSettings(suites=("seed", "realworld"), benchmark=tmp_path / "nope.csv")


def test_alone_the_suite_trains_the_seed_runs_it_scores(tmp_path):
    names = separable_names(per_class=20)
    data = make_names_folder(tmp_path / "names", names)
    bench = tmp_path / "bench.csv"
    write_benchmark(bench, names)
    config = TrainConfig(epochs=1, hidden_size=8, batch_size=8, lr=0.03, device="cpu")
    settings = CompareSettings(
        models=("gru",),
        seeds=1,
        config=config,
        out=tmp_path / "out",
        quick=True,
        suites=("realworld",),
        benchmark=bench,
    )
    with one_thread():
        summary = run_compare(settings, data, log=lambda line: None)
    section = summary["realworld"]
    assert list(section["models"]) == ["gru"] and section["focus"] == "gru"
    assert (tmp_path / "out" / "runs" / "gru-seed0" / "metrics.json").is_file()
    assert section["targets"][0]["measured"] == section["models"]["gru"]["priors"]["uniform"]["accuracy"]["mean"]
    assert "## Real-world names" in (tmp_path / "out" / "report.md").read_text()
