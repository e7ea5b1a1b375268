"""export.py: every kind of recurrent run exported to ONNX gives namelab's probabilities within 1e-5."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from helpers import make_names_folder, separable_names, train_tiny_run

from namelab.data.corpus import Vocab, encode_batch
from namelab.inference.export import build_graph, export_onnx, onnx_metadata
from namelab.inference.load import load_predictor
from namelab.runs.checkpoint import CheckpointError

ort = pytest.importorskip("onnxruntime")

# Each kind of run a user can train: every cell, both directions, embeddings, the n-gram
# channel, every pool, and a run trained by the fused engine.
KINDS = {
    "rnn": dict(cell="rnn"),
    "lstm": dict(cell="lstm"),
    "gru": dict(cell="gru"),
    "lstm-bidirectional": dict(cell="lstm", bidirectional=True),
    "gru-bidirectional-embedding-ngram-mean": dict(
        cell="gru", bidirectional=True, embedding_dim=8, ngram_buckets=64, pool="mean"
    ),
    "rnn-bidirectional-max": dict(cell="rnn", bidirectional=True, pool="max"),
    "lstm-embedding-ngram-meanmax": dict(cell="lstm", embedding_dim=8, ngram_buckets=32, pool="meanmax"),
    "lstm-ngram": dict(cell="lstm", ngram_buckets=16),
    "gru-fused-mean": dict(cell="gru", engine="fused", pool="mean"),
}
LONGEST = 24  # past the training names' 7 characters: the graph must not care


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory):
    return make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, names_dir):
    """``kind -> (run folder, .onnx path)``, each trained (one epoch) and exported on first use."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            root = tmp_path_factory.mktemp(kind)
            train_tiny_run(names_dir, root / "run", epochs=1, **KINDS[kind])
            cache[kind] = (root / "run", export_onnx(root / "run", root / "model.onnx"))
        return cache[kind]

    return get


def every_length(vocab: Vocab, longest: int = LONGEST, per_length: int = 2, seed: int = 0) -> list[str]:
    """Normalized names of each length 1..longest, of letters, spaces, apostrophes, hyphens and unknowns."""
    rng = random.Random(seed)
    letters = vocab.symbols.replace(" ", "")
    names = []
    for length in range(1, longest + 1):
        for _ in range(per_length):
            inner = "".join(rng.choice(vocab.symbols) for _ in range(length - 2)) if length > 2 else ""
            # One space between words and a letter at each end, as normalize leaves a name.
            inner = " ".join(inner.split()).ljust(max(0, length - 2), "a")
            names.append((rng.choice(letters) + inner + rng.choice(letters))[:length])
    return names


def run_onnx(session, names: list[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    ids, lengths = encode_batch(names, vocab)
    return tuple(session.run(["probabilities", "logits"], {"ids": ids.numpy(), "lengths": lengths.numpy()}))


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_matches_predictor_in_one_batch_and_name_by_name(exported, kind):
    run_dir, path = exported(kind)
    predictor = load_predictor(run_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = every_length(predictor.vocab)
    assert {len(n) for n in names} == set(range(1, LONGEST + 1))
    expected = predictor.probabilities(names).numpy()
    probs, logits = run_onnx(session, names, predictor.vocab)
    assert probs.shape == (len(names), len(predictor.labels))
    assert np.abs(probs - expected).max() <= 1e-5
    # The second output is the uncalibrated logits: the temperature turns them into the first.
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(logits) / predictor.temperature, 1).numpy(), probs, atol=1e-6
    )
    for i in range(0, len(names), 5):
        single, _ = run_onnx(session, [names[i]], predictor.vocab)
        assert np.abs(single - expected[i : i + 1]).max() <= 1e-5, names[i]


def test_the_ngram_channel_is_in_the_graph(exported):
    """A trained n-gram channel moves the probabilities: the match above is not a zero table's."""
    run_dir, path = exported("lstm-ngram")
    predictor = load_predictor(run_dir)
    assert predictor.model.ngram.table.weight.abs().max() > 1e-3
    names = every_length(predictor.vocab)
    without = predictor.model.out(predictor.model.features(*encode_batch(names, predictor.vocab)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, logits = run_onnx(session, names, predictor.vocab)
    assert np.abs(logits - without.detach().numpy()).max() > 1e-4


def test_metadata_says_how_to_encode_and_read(exported):
    run_dir, path = exported("lstm")
    predictor = load_predictor(run_dir)
    meta = onnx_metadata(path)
    assert meta["labels"] == predictor.labels
    assert meta["vocab"] == predictor.vocab.chars
    assert meta["temperature"] == pytest.approx(predictor.temperature)
    assert meta["encoding"]["symbols"] == predictor.vocab.symbols
    assert meta["model"]["cell"] == "lstm" and meta["model"]["hidden_size"] == 16
    assert meta["namelab_version"]


def test_the_graph_divides_by_the_temperature(exported):
    run_dir, _ = exported("gru")
    predictor = load_predictor(run_dir)
    names = every_length(predictor.vocab)
    session = ort.InferenceSession(build_graph(predictor.model, 2.5).SerializeToString())
    probs, logits = run_onnx(session, names, predictor.vocab)
    np.testing.assert_allclose(probs, torch.softmax(predictor.scores(names) / 2.5, 1).numpy(), atol=1e-5)
    assert np.abs(probs - torch.softmax(torch.from_numpy(logits), 1).numpy()).max() > 1e-3


def test_bad_run_folders_get_clear_errors(tmp_path, exported):
    with pytest.raises(CheckpointError, match="does not exist"):
        export_onnx(tmp_path / "missing", tmp_path / "x.onnx")
    run_dir, _ = exported("rnn")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for item in run_dir.iterdir():
        if item.name != "manifest.json":
            (damaged / item.name).write_bytes(item.read_bytes())
    with pytest.raises(CheckpointError, match="unfinished|manifest"):
        export_onnx(damaged, tmp_path / "x.onnx")
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    (ensemble / "config.json").write_text(json.dumps({"kind": "ensemble", "members": ["members/a"]}))
    with pytest.raises(ValueError, match="export each recurrent member"):
        export_onnx(ensemble, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_the_export_command_writes_a_model_onnxruntime_runs(tiny_runs, tmp_path, capsys):
    import onnxruntime as ort

    from namelab.cli.commands import main

    out = tmp_path / "gru.onnx"
    assert main(["export", str(tiny_runs["gru"]), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits"]
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x.onnx")]) == 1
    assert not (tmp_path / "x.onnx").exists()
