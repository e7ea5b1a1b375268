"""backends.py: the onnx backend answers as the torch one, through Predictor and ensembles."""

from __future__ import annotations

import pytest
import torch
from helpers import make_names_folder, separable_names, train_tiny_run

from namelab.inference.backends import distinct, make_backend
from namelab.inference.ensemble import EnsemblePredictor, write_ensemble
from namelab.inference.load import load_predictor

pytest.importorskip("onnxruntime")

NAMES = ["Aeiou", "Bdkgt", "Lmnrs", "a", "Aeiou", "de la Cruz", "O'Brien-Smith?", "Bdkgt", "x" * 30]


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    names = make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))
    root = tmp_path_factory.mktemp("ensemble")
    train_tiny_run(names, root / "members/lstm", cell="lstm", epochs=1)
    train_tiny_run(names, root / "members/gru", cell="gru", epochs=1, bidirectional=True, pool="meanmax")
    write_ensemble(root, [root / "members/lstm", root / "members/gru"], {"weights": [0.3, 0.7]})
    return root


def test_distinct_scores_each_name_once_and_puts_rows_back():
    unique, rows = distinct(["bb", "a", "bb", "ccc", "a"])
    assert unique == ["a", "bb", "ccc"]  # shortest first: batches by length
    assert [unique[r] for r in rows] == ["bb", "a", "bb", "ccc", "a"]


@pytest.mark.parametrize("member", ["lstm", "gru"])
def test_onnx_backend_predicts_as_torch(ensemble_dir, member):
    run_dir = ensemble_dir / "members" / member
    torch_p, onnx_p = load_predictor(run_dir), load_predictor(run_dir, backend="onnx")
    assert onnx_p.backend.name == "onnx" and torch_p.backend.name == "torch"
    assert (torch_p.probabilities(NAMES) - onnx_p.probabilities(NAMES)).abs().max() <= 1e-5
    # Repeats are scored once and put back in every place they held.
    scores = onnx_p.scores(NAMES)
    assert torch.equal(scores[0], scores[4]) and torch.equal(scores[1], scores[7])
    assert [r["predictions"][0]["language"] for r in onnx_p.predict(NAMES[:3], top_k=1)] == [
        r["predictions"][0]["language"] for r in torch_p.predict(NAMES[:3], top_k=1)
    ]


def test_ensembles_pass_the_backend_to_their_members(ensemble_dir):
    torch_e, onnx_e = load_predictor(ensemble_dir), load_predictor(ensemble_dir, backend="onnx")
    assert isinstance(onnx_e, EnsemblePredictor)
    assert {m.backend.name for m in onnx_e.members} == {"onnx"}
    # auto: onnxruntime for the LSTM only, where it measured faster than the hand engine.
    auto = load_predictor(ensemble_dir, backend="auto")
    assert [m.backend.name for m in auto.members] == ["onnx", "torch"]
    assert (torch_e.probabilities(NAMES) - onnx_e.probabilities(NAMES)).abs().max() <= 1e-5


def test_unknown_backend_is_refused(ensemble_dir):
    model = load_predictor(ensemble_dir / "members/lstm").model
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose one of torch, onnx, auto"):
        make_backend(model, None, "tensorrt")


def test_predict_takes_the_backend_from_the_command_line(ensemble_dir, capsys):
    import json

    from namelab.cli.commands import main

    answers = {}
    for backend in ("torch", "onnx"):
        assert main(["predict", str(ensemble_dir), *NAMES[:3], "--backend", backend, "--format", "json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        answers[backend] = [[p["probability"] for p in row["predictions"]] for row in rows]
    assert len(answers["torch"]) == 3
    for mine, theirs in zip(answers["torch"], answers["onnx"]):
        assert mine == pytest.approx(theirs, abs=2e-6)  # JSON rounds to 6 decimals
