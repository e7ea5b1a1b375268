"""The n-gram baseline and ensembles: stored safely, loaded by Predictor like any run, served.

    .venv/bin/python -m pytest tests/test_ensemble.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from helpers import one_thread, tiny_config

from namelab.data.corpus import Corpus
from namelab.inference.ensemble import EnsemblePredictor, write_ensemble
from namelab.inference.evaluate import evaluate_run
from namelab.inference.load import load_predictor
from namelab.inference.ngram import NgramModel, NgramPredictor, char_wb_ngrams
from namelab.runs.checkpoint import CONFIG, WEIGHTS, CheckpointError, read_json, write_manifest
from namelab.train.ngram import train_ngram
from namelab.train.presets import PRESETS, preset, train_ensemble

NAMES = ["Aeiou", "Bdkgt", "Lmnrs", "Abdul", "Xyz"]


@pytest.fixture(scope="module")
def corpus(tiny_names_dir: Path) -> Corpus:
    return Corpus.from_folder(tiny_names_dir)


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory, corpus: Corpus, tiny_names_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("ensemble")
    members = [
        tiny_config(cell="gru", epochs=6),
        tiny_config(cell="gru", bidirectional=True, pool="meanmax", epochs=6),
    ]
    with one_thread():
        train_ensemble(members, corpus, folder, ngram=True, data_dir=tiny_names_dir, log=lambda line: None)
    return folder


def test_ngram_tfidf_is_scikit_learns(corpus: Corpus):
    from sklearn.feature_extraction.text import TfidfVectorizer

    split = corpus.split(seed=0)
    model = NgramModel.fit(split, corpus.labels, c_grid=(1.0,))
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, lowercase=True)
    reference.fit([e.name for e in split.train])
    names = [e.name for e in split.test] + ["Zzzz-Qq", "Aeiou"]
    ours, theirs = model.transform(names).toarray(), reference.transform(names).toarray()
    assert ours.shape == theirs.shape and ours.any()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    # words apart, short words, no words; then a character outside the keyed symbols (per-name path)
    odd = ["van der Berg", "a", "O'Neil-Smith", "x  y   z", "", "   ", "ab", "a b c d", "Q?x", "Aeiou Bdkgt"]
    for batch in (odd, odd + ["Zoë"]):
        ours, theirs = model.transform(batch).toarray(), reference.transform(batch).toarray()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_ngram_cuts_are_scikit_learns():
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=True).build_analyzer()
    texts = ["Nakamura", "a", "ab", "abc", "O'Brien", "van  der Berg", " de la\tCruz ", "x-y", "", "   ", "Zoë"]
    for text in texts:
        assert char_wb_ngrams(text.lower()) == analyzer(text), text


def test_ngram_run_round_trips_and_refuses_a_tampered_file(corpus: Corpus, tmp_path: Path, known_names):
    split = corpus.split(seed=0)
    metrics = train_ngram(split, corpus.labels, tmp_path / "ngram", meta={"config": {"split_seed": 0}})
    assert metrics["accuracy"] > 0.9 and "ece_after" in metrics
    predictor = load_predictor(tmp_path / "ngram")
    assert isinstance(predictor, NgramPredictor)
    rows = predictor.predict(list(known_names), top_k=1)
    assert {row["name"]: row["predictions"][0]["language"] for row in rows} == known_names
    fitted = NgramModel.fit(split, corpus.labels)
    torch.testing.assert_close(predictor.scores(NAMES), fitted.log_probs(NAMES), rtol=1e-5, atol=1e-5)
    assert "pickle" not in (tmp_path / "ngram" / CONFIG).read_text()
    weights = tmp_path / "ngram" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="checksum"):
        load_predictor(tmp_path / "ngram")


def test_ensemble_predicts_the_average_of_its_members(ensemble_dir: Path, known_names):
    predictor = load_predictor(ensemble_dir)
    assert isinstance(predictor, EnsemblePredictor)
    meta = read_json(ensemble_dir / CONFIG)
    assert meta["kind"] == "ensemble" and len(meta["members"]) == 3
    members = [load_predictor(ensemble_dir / member) for member in meta["members"]]
    assert isinstance(members[-1], NgramPredictor)
    weights = meta.get("weights", [1 / len(members)] * len(members))
    mean = sum(w * member.probabilities(NAMES) for w, member in zip(weights, members))
    expected = torch.softmax(mean.log() / meta["calibration"]["temperature"], dim=1)
    torch.testing.assert_close(predictor.probabilities(NAMES), expected, rtol=1e-5, atol=1e-6)
    rows = predictor.predict(list(known_names), top_k=2, min_confidence=0.5, coverage=0.9)
    assert {row["name"]: row["predictions"][0]["language"] for row in rows} == known_names
    assert all(row["coverage_set"][0] == row["predictions"][0]["language"] for row in rows)


def test_ensemble_metrics_are_what_evaluate_recomputes(ensemble_dir: Path, tiny_names_dir: Path):
    saved = read_json(ensemble_dir / "metrics.json")
    recomputed, warning = evaluate_run(ensemble_dir, tiny_names_dir, device="cpu")
    assert warning is None
    assert recomputed == saved
    assert {"ece_before", "ece_after", "coverage", "mean_set_size"} <= set(saved)


def test_a_folder_of_member_runs_serves_the_ngram_beside_the_best_recurrent_run(ensemble_dir: Path):
    from namelab.runs.checkpoint import read_history
    from namelab.serve import find_runs, load_served_models

    members = ensemble_dir / "members"
    runs = find_runs(members)  # read as a compare folder: the best run of each kind
    assert [r.name for r in runs][-1] == "ngram" and len(runs) == 2
    ngram_history = read_history(members / "ngram", fields=("val_accuracy",))  # no losses: no epochs trained
    models = {m.run_dir.name: m for m in load_served_models([members])}
    assert models["ngram"].best_val_accuracy == ngram_history[0]["val_accuracy"]
    assert models["ngram"].test_metrics["accuracy"] == read_json(members / "ngram" / "metrics.json")["accuracy"]


def test_ensemble_is_served_like_any_run(ensemble_dir: Path):
    from namelab.serve import create_app, load_served_models

    client = TestClient(create_app(load_served_models([ensemble_dir])))
    response = client.post("/api/predict", json={"names": NAMES, "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["models"] == ["ensemble"]
    alone = load_predictor(ensemble_dir).predict(NAMES, top_k=3)
    for ours, theirs in zip(body["results"], alone):
        served = ours["predictions"]["ensemble"]
        assert [p["language"] for p in served] == [p["language"] for p in theirs["predictions"]]
        for p, q in zip(served, theirs["predictions"]):
            assert p["probability"] == pytest.approx(q["probability"], abs=1e-5)
    models = client.get("/api/models").json()
    assert "ensemble" in str(models)


def test_an_ensemble_refuses_members_outside_its_folder_and_unknown_presets(tmp_path: Path, tiny_runs):
    with pytest.raises(ValueError, match="not inside the ensemble folder"):
        write_ensemble(tmp_path / "ens", [tiny_runs["gru"]])
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / CONFIG).write_text('{"kind": "ensemble", "members": ["../elsewhere"], "labels": []}')
    write_manifest(tmp_path / "ens")  # a complete folder, checksums and all: the member path is what is wrong
    with pytest.raises(CheckpointError, match="outside the folder"):
        load_predictor(tmp_path / "ens")
    with pytest.raises(ValueError, match="unknown preset 'fastest'; choose one of best"):
        preset("fastest")
    assert "best" in PRESETS


def test_weights_are_fitted_on_validation_and_used(ensemble_dir: Path):
    from namelab.inference.ensemble import fit_weight

    meta = read_json(ensemble_dir / CONFIG)
    weights = meta["weights"]
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0) and weights[0] == weights[1]
    predictor = load_predictor(ensemble_dir)
    members = [load_predictor(ensemble_dir / member) for member in meta["members"]]
    mixed = sum(w * member.probabilities(NAMES) for w, member in zip(weights, members))
    expected = torch.softmax(mixed.log() / meta["calibration"]["temperature"], dim=1)
    torch.testing.assert_close(predictor.probabilities(NAMES), expected, rtol=1e-5, atol=1e-6)
    # The grid value that makes the most validation names right wins: here only the second member is right.
    right, wrong = torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    assert fit_weight([wrong, right], torch.tensor([0, 1]), grid=(0.2, 0.7)) == [pytest.approx(0.3), 0.7]
    assert fit_weight([right], torch.tensor([0, 1])) == [1.0]
