"""The population a user classifies: --prior re-weights a run's probabilities, and names unlike
every training language are flagged ``unknown_language``.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from namelab.data.corpus import normalize
from namelab.inference.load import load_predictor
from namelab.inference.priors import reweight
from namelab.inference.unknown import UnknownCheck
from namelab.runs.checkpoint import CONFIG, CheckpointError, write_manifest

NAMES = ["Abab", "Cdcd", "Efef", "Baba", "Dcdc"]


def full_rows(predictor, names, **options) -> torch.Tensor:
    """The probability of every language per name, in label order, from ``predict``'s rows."""
    rows = predictor.predict(names, top_k=len(predictor.labels), **options)
    out = torch.zeros(len(rows), len(predictor.labels), dtype=torch.float64)
    for i, row in enumerate(rows):
        for entry in row["predictions"]:
            out[i, predictor.labels.index(entry["language"])] = entry["probability"]
    return out


def test_a_run_records_its_training_prior(tiny_runs):
    predictor = load_predictor(tiny_runs["gru"])
    prior = predictor.train_prior
    assert prior.shape == (len(predictor.labels),)
    assert prior.sum().item() == pytest.approx(1.0) and (prior > 0).all()


def test_uniform_and_file_priors_reweight_as_the_formula_says(tiny_runs, tmp_path):
    predictor = load_predictor(tiny_runs["gru"])
    train = full_rows(predictor, NAMES)
    uniform = full_rows(predictor, NAMES, prior="uniform")
    expected = reweight(train, predictor.train_prior, torch.full((len(predictor.labels),), 1 / len(predictor.labels)))
    assert torch.allclose(uniform, expected, atol=2e-6)
    shares = {label: (i + 1) for i, label in enumerate(predictor.labels)}
    path = tmp_path / "shares.json"
    path.write_text(json.dumps(shares))
    target = torch.tensor([shares[label] for label in predictor.labels], dtype=torch.float64)
    assert torch.allclose(full_rows(predictor, NAMES, prior=path), reweight(train, predictor.train_prior, target), atol=2e-6)
    assert torch.allclose(full_rows(predictor, NAMES, prior="train"), train)


def test_estimate_fits_the_prior_of_the_names_given(tiny_runs, known_names):
    predictor = load_predictor(tiny_runs["lstm"])
    # A population of one language: EM puts most of the mass there.
    only = [name for name, language in known_names.items() if language == predictor.labels[0]]
    names = [name + suffix for name in only for suffix in ("", "a", "e", "o")] or only
    probs = predictor.probabilities([normalize(n) for n in names])
    target = predictor.target_prior("estimate", probs)
    assert target.argmax().item() == 0 and target[0] > predictor.train_prior[0]


def test_a_run_without_a_training_prior_says_to_train_again(tiny_runs, tmp_path):
    run = shutil.copytree(tiny_runs["rnn"], tmp_path / "old")
    meta = json.loads((run / CONFIG).read_text())
    del meta["train_prior"]
    (run / CONFIG).write_text(json.dumps(meta))
    write_manifest(run)
    predictor = load_predictor(run)
    assert predictor.predict(["Abab"])[0]["predictions"]  # the training prior needs nothing
    with pytest.raises(ValueError, match="records no training prior.*train it again"):
        predictor.predict(["Abab"], prior="uniform")


def test_every_row_carries_the_unknown_language_flag_and_score(tiny_runs):
    predictor = load_predictor(tiny_runs["gru"])
    rows = predictor.predict(["Abab", "Zzzzqqq", "!!"])
    assert rows[2]["error"] and "unknown_language" not in rows[2]
    known, odd = rows[0], rows[1]
    assert known["unknown_score"] < odd["unknown_score"]
    assert odd["unknown_language"] is True


def test_the_threshold_flags_the_false_alarm_rate_of_validation_names(tiny_runs):
    check = UnknownCheck.load(tiny_runs["gru"])
    scores = check.validation_scores
    for rate in (0.05, 0.2, 0.5):
        flagged = (scores > check.threshold(rate)).double().mean().item()
        assert flagged <= rate + 1e-9 and flagged >= rate - 1.0 / len(scores) - 1e-9
    with pytest.raises(ValueError, match="between 0 and 1"):
        check.threshold(1.5)


def test_a_damaged_scorer_is_refused(tiny_runs, tmp_path):
    run = shutil.copytree(tiny_runs["rnn"], tmp_path / "damaged")
    blob = bytearray((run / "unknown.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (run / "unknown.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError):
        load_predictor(run)


def test_coverage_sets_keep_the_training_prior(tiny_runs):
    predictor = load_predictor(tiny_runs["gru"])
    plain = predictor.predict(NAMES, coverage=0.9)
    shifted = predictor.predict(NAMES, coverage=0.9, prior="uniform")
    assert [r["coverage_set"] for r in plain] == [r["coverage_set"] for r in shifted]


def test_dask_gets_the_prior_resolved_on_the_driver(tmp_path):
    from namelab.data.download import DataError
    from namelab.inference.distributed import _shipped_prior

    labels = ["Alpha", "Beta", "Gamma"]
    path = tmp_path / "shares.csv"
    path.write_text("language,share\nAlpha,2\nBeta,1\nGamma,1\n")
    assert torch.allclose(_shipped_prior(str(path), labels), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    assert _shipped_prior("uniform", labels) == "uniform"
    with pytest.raises(DataError, match="without --workers"):
        _shipped_prior("estimate", labels)


def test_a_score_equal_to_the_threshold_is_not_flagged(tiny_runs):
    predictor = load_predictor(tiny_runs["gru"])
    # Whole-number validation scores: threshold(0.05) of 1..20 is 19, above which lies one name in twenty.
    predictor.unknown = UnknownCheck(predictor.unknown.scorer, torch.arange(1.0, 21.0))
    probs = predictor.probabilities(["abab"] * 4)
    rows = predictor.describe(probs, unknown_scores=torch.tensor([18.0, 19.0, 19.5, 20.0]), false_alarm=0.05)
    assert predictor.unknown.threshold(0.05) == 19.0
    assert [row["unknown_language"] for row in rows] == [False, False, True, True]


def test_coverage_sets_ignore_a_prior_that_changes_the_ranking(tiny_runs, known_names):
    from namelab.data.corpus import Vocab
    from namelab.inference.base import Predictor
    from namelab.runs.checkpoint import load_run

    model, meta = load_run(tiny_runs["lstm"])
    # A threshold of 0.05 keeps about the top language only: the sets are not every language.
    meta = {**meta, "calibration": {"temperature": 1.0, "conformal_scores": [0.05] * 100}}
    predictor = Predictor(model, Vocab(meta["vocab"]), meta["labels"], meta)
    names = list(known_names)
    target = torch.tensor([0.98, 0.01, 0.01], dtype=torch.float64)  # nearly all the first language
    plain = predictor.predict(names, coverage=0.9)
    shifted = predictor.predict(names, coverage=0.9, prior=target)
    assert [r["coverage_set"] for r in shifted] == [r["coverage_set"] for r in plain]
    # The prior moved some name's top language out of its (training-prior) set: the check above is not vacuous.
    assert any(r["predictions"][0]["language"] not in r["coverage_set"] for r in shifted)


def test_evaluate_scores_the_answers_under_the_prior_asked(tiny_runs, tiny_names_dir, tmp_path):
    from namelab.core.metrics import confusion_matrix
    from namelab.data.corpus import Corpus
    from namelab.inference.evaluate import evaluate_run

    predictor = load_predictor(tiny_runs["gru"])
    path = tmp_path / "shares.json"
    path.write_text(json.dumps({label: (1.0 if i == 0 else 0.0) for i, label in enumerate(predictor.labels)}))
    metrics, _ = evaluate_run(tiny_runs["gru"], tiny_names_dir, device="cpu", prior=str(path))
    plain, _ = evaluate_run(tiny_runs["gru"], tiny_names_dir, device="cpu")
    test = Corpus.from_folder(tiny_names_dir).split(seed=predictor.meta["config"]["split_seed"]).test
    rows = predictor.predict([e.name for e in test], top_k=1, prior=path)
    answers = [predictor.labels.index(row["predictions"][0]["language"]) for row in rows]
    expected = confusion_matrix([e.label for e in test], answers, len(predictor.labels)).tolist()
    assert metrics["confusion"] == expected != plain["confusion"]


def test_the_flag_reads_the_score_unrounded_and_a_saved_check_keeps_its_threshold(tiny_runs, tmp_path):
    predictor = load_predictor(tiny_runs["gru"])
    fine = torch.linspace(2.0, 3.0, 21, dtype=torch.float64) + 1.23456789e-7  # more digits than are shown
    check = UnknownCheck(predictor.unknown.scorer, fine)
    threshold = check.threshold(0.05)
    check.save(tmp_path)
    assert UnknownCheck.load(tmp_path).threshold(0.05) == threshold  # the name that set it stays unflagged
    predictor.unknown = check
    probs = predictor.probabilities(["abab"] * 3)
    just = torch.tensor([threshold, threshold + 2e-5, threshold - 2e-5], dtype=torch.float64)  # +2e-5 shows as the threshold, rounded
    rows = predictor.describe(probs, unknown_scores=just, false_alarm=0.05)
    assert [row["unknown_language"] for row in rows] == [False, True, False]
