"""Tests for namelab.experiment.probe: the gradient-flow probe and the names it reads.

    .venv/bin/python -m pytest tests/test_probe.py -q
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_names_folder, separable_names

from namelab.core.model import CharClassifier, ModelConfig
from namelab.data.corpus import Corpus, Example, encode_batch
from namelab.experiment.probe import gradient_flow, probe_examples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Three classes and the default vocabulary: all the probe tests read from a corpus."""
    return Corpus.from_folder(make_names_folder(tmp_path_factory.mktemp("names"), separable_names()))


def long_names(count: int = 12) -> list[Example]:
    rng = random.Random(3)
    return [Example("".join(rng.choice("abcdefgh") for _ in range(rng.randint(12, 15))), rng.randint(0, 2))
            for _ in range(count)]


def test_probe_shape_and_agreement_with_the_model(corpus):
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(len(corpus.vocab), corpus.num_classes, "lstm", 24, "hand", dropout=0.5))
    examples = long_names()
    flow = gradient_flow(model, examples, corpus.vocab)
    assert flow.norms.shape == (min(len(e.name) for e in examples),)
    assert np.all(np.isfinite(flow.norms)) and np.all(flow.norms > 0)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # parameters untouched
    # Distance 0 is the gradient at the state the classifier reads, through the model's own forward.
    ids, lengths = encode_batch([e.name for e in examples], corpus.vocab)
    model.eval()
    last = model.last_hidden(ids, lengths).detach().requires_grad_()
    loss = F.nll_loss(F.log_softmax(model.out(last), dim=-1), torch.tensor([e.label for e in examples]),
                      reduction="sum")
    (grad,) = torch.autograd.grad(loss, last)
    assert flow.norms[0] == pytest.approx(grad.norm(dim=1).mean().item(), rel=1e-5)
    # The fused engine runs the same weights, so the probe measures the same thing.
    fused = gradient_flow(model.with_engine("fused"), examples, corpus.vocab)
    np.testing.assert_allclose(fused.norms, flow.norms, rtol=1e-4)


def test_probe_sees_no_gradient_through_a_cut_recurrence(corpus):
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(len(corpus.vocab), corpus.num_classes, "rnn", 16, "hand"))
    with torch.no_grad():
        model.cell.h2h.weight.zero_()  # h_t no longer feeds h_{t+1}
    flow = gradient_flow(model, long_names(), corpus.vocab)
    assert flow.norms[0] > 0
    assert np.all(flow.norms[1:] == 0)


def test_rnn_gradient_vanishes_at_initialization(corpus):
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(len(corpus.vocab), corpus.num_classes, "rnn", 32, "hand"))
    flow = gradient_flow(model, long_names(), corpus.vocab)
    # torch's init gives W_hh a spectral radius near 0.6, so 11 steps shrink the gradient by far more than 20×.
    assert flow.ratio() < 0.05


def test_probe_examples_prefers_long_names_and_is_deterministic():
    short = [Example(f"Ab{i}", 0) for i in range(20)]
    longer = [Example("A" * 12 + "b" * i, 1) for i in range(10)]
    chosen = probe_examples(short + longer, max_names=64, min_length=12, min_names=8)
    assert chosen == sorted(longer, key=lambda e: -len(e.name))
    assert probe_examples(list(reversed(short + longer))) == chosen
    fallback = probe_examples(short + longer[:2], max_names=5, min_length=12, min_names=8)
    assert len(fallback) == 5 and fallback[:2] == sorted(longer[:2], key=lambda e: -len(e.name))
    with pytest.raises(ValueError, match="test split is empty"):
        probe_examples([])
