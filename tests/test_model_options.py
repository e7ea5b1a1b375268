"""The accuracy options (bidirectional, pooling, embeddings, n-gram channel) compute what their references compute.

    .venv/bin/python -m pytest tests/test_model_options.py -q

Two independent references: torch's fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` run on each
name alone (no padding at all), pooled here with plain torch ops, and autograd through
the plain ``cell.step`` loop for the engine's every-step states. Outputs and every
gradient must agree.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from namelab.core.engine import padded_rows, run_cell_states
from namelab.core.model import POOLS, CharClassifier, ModelConfig, ngram_bag, reverse_within

# Every test runs on both LSTM kernels (conftest.kernel): torch's operators and the C++ pass.
pytestmark = pytest.mark.usefixtures("kernel")

CELL_NAMES = ("rnn", "lstm", "gru")
VOCAB, CLASSES, HIDDEN = 9, 4, 5
MIXED = [3, 7, 1, 7, 2, 5, 4, 1]


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids, torch.tensor(lengths)


def reference_logits(model: CharClassifier, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each name alone through torch's fused layer holding the model's weights, pooled by hand."""
    config = model.config
    fused = model.with_engine("fused")  # the weights under torch's names; its forward is not used
    rows = []
    for row, length in enumerate(lengths.tolist()):
        x = ids[row : row + 1, :length]
        inputs = fused.embed(x) if config.embedding_dim else F.one_hot(x, VOCAB).double()
        outputs, _ = fused.rnn(inputs)  # (1, L, directions * H), no padding anywhere
        outputs = outputs[0]
        H = config.hidden_size
        if config.pool == "last":
            parts = [outputs[-1, :H]] + ([outputs[0, H:]] if config.bidirectional else [])
        else:
            parts = []
            if config.pool in ("mean", "meanmax"):
                parts.append(outputs.mean(0))
            if config.pool in ("max", "meanmax"):
                parts.append(outputs.max(0).values)
        rows.append(torch.cat(parts))
    features = torch.stack(rows)
    return fused.out(features), fused


def all_options():
    for cell in CELL_NAMES:
        for bidirectional in (False, True):
            for pool in POOLS:
                yield cell, bidirectional, pool, 0
        yield cell, True, "meanmax", 3


@pytest.mark.parametrize("cell,bidirectional,pool,embedding_dim", list(all_options()))
@pytest.mark.parametrize("engine", ["hand", "fused"])
def test_options_match_torch_fused_layers_name_by_name(cell, bidirectional, pool, embedding_dim, engine):
    torch.manual_seed(3)
    model = CharClassifier(ModelConfig(
        VOCAB, CLASSES, cell, HIDDEN, engine, bidirectional=bidirectional, pool=pool, embedding_dim=embedding_dim
    )).double()
    ids, lengths = padded_batch(MIXED)
    targets = torch.arange(len(MIXED)) % CLASSES
    ours = model(ids, lengths)
    F.cross_entropy(ours, targets).backward()
    theirs, reference = reference_logits(model, ids, lengths)
    F.cross_entropy(theirs, targets).backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    ours_w, theirs_w = model.recurrent_weights(), reference.recurrent_weights()
    assert set(ours_w) == set(theirs_w) and (len(ours_w) == 8) == bidirectional
    for name in ours_w:
        torch.testing.assert_close(ours_w[name].grad, theirs_w[name].grad, rtol=1e-9, atol=1e-10, msg=name)
    torch.testing.assert_close(model.out.weight.grad, reference.out.weight.grad, rtol=1e-9, atol=1e-10)
    if embedding_dim:
        torch.testing.assert_close(model.embed.weight.grad, reference.embed.weight.grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_engine_states_match_autograd_through_cell_step(cell, dtype):
    """Every step's state, with a gradient arriving at every step, against the plain cell loop."""
    torch.manual_seed(5)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN)).to(dtype)
    ids, lengths = padded_batch(MIXED, seed=1)
    probe = torch.randn(len(MIXED), max(MIXED), HIDDEN, dtype=dtype)  # a weight for every (name, step)
    mask = (torch.arange(max(MIXED)) < lengths[:, None]).unsqueeze(2)

    states, plan = run_cell_states(model.cell, ids, lengths)
    rows = padded_rows(plan)
    padded = torch.cat([states, states.new_zeros(1, HIDDEN)])[rows]  # (B, T, H)
    (padded * probe * mask).sum().backward()
    ours = {name: p.grad.clone() for name, p in model.cell.named_parameters()}
    model.zero_grad()
    reference = model.hidden_states(ids, lengths)
    (reference * probe * mask).sum().backward()
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(padded * mask, reference.detach() * mask, **tolerance)
    assert (rows >= plan.num_tokens).sum() == lengths.numel() * max(MIXED) - lengths.sum()
    for name, param in model.cell.named_parameters():
        torch.testing.assert_close(ours[name], param.grad, **tolerance, msg=name)
    with torch.no_grad():  # inference keeps nothing for a backward, and agrees
        again, _ = run_cell_states(model.cell, ids, lengths)
    torch.testing.assert_close(again, states.detach(), rtol=0, atol=0)


def test_reverse_within_reads_each_name_backwards_and_keeps_padding_past_the_end():
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    lengths = torch.tensor([3, 2, 4])
    reversed_ids = reverse_within(ids, lengths)
    assert reversed_ids[0, :3].tolist() == [3, 2, 1]
    assert reversed_ids[1, :2].tolist() == [5, 4]
    assert reversed_ids[2].tolist() == [9, 8, 7, 6]


def test_padding_never_changes_a_pooled_result():
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, "gru", HIDDEN, bidirectional=True, pool="meanmax")).eval()
    ids, lengths = padded_batch([4, 2])
    wider = torch.cat([ids, torch.full((2, 3), 7)], dim=1)  # junk, not zeros, past every end
    torch.testing.assert_close(model(ids, lengths), model(wider, lengths))


def test_model_config_refuses_unknown_options_and_old_runs_load_as_trained():
    with pytest.raises(ValueError, match="unknown pool 'median'.*last, mean, max, meanmax"):
        ModelConfig(VOCAB, CLASSES, pool="median")
    with pytest.raises(ValueError, match="embedding_dim"):
        ModelConfig(VOCAB, CLASSES, embedding_dim=-1)
    old = {"cell": "gru", "hidden_size": 8, "engine": "hand", "dropout": 0.1, "epochs": 3}  # no option fields
    config = ModelConfig.from_run_config(old, VOCAB, CLASSES)
    assert config == ModelConfig(VOCAB, CLASSES, "gru", 8, "hand", 0.1)
    assert config.is_seed_shape
    wide = ModelConfig(VOCAB, CLASSES, "gru", 8, bidirectional=True, pool="meanmax")
    assert CharClassifier(wide).out.in_features == 4 * 8 == wide.features


# -- the character n-gram channel ------------------------------------------------------


def reference_bag(name_ids: list[int], vocab_size: int, buckets: int) -> list[int]:
    """The buckets of one name's framed 1- to 4-grams, one n-gram at a time in plain Python."""
    framed = [vocab_size, *name_ids, vocab_size + 1]
    found = []
    for n in (1, 2, 3, 4):
        for start in range(len(framed) - n + 1):
            key = n
            for symbol in framed[start : start + n]:
                key = key * (vocab_size + 2) + symbol
            found.append(((key * 2654435761) % 2**32) * buckets // 2**32)
    return sorted(found)


@pytest.mark.parametrize("buckets", [1, 7, 1000, 2**20])
def test_ngram_bag_holds_every_framed_ngram_once_and_padding_never(buckets):
    lengths = [1, 4, 2, 6]
    ids, lengths_t = padded_batch(lengths, seed=3)
    wider = torch.cat([ids, torch.full((len(lengths), 2), 5)], dim=1)  # junk past every end
    for batch in (ids, wider):
        index, weights = ngram_bag(batch, lengths_t, VOCAB, buckets)
        for row, length in enumerate(lengths):
            real = weights[row] > 0
            assert sorted(index[row][real].tolist()) == reference_bag(ids[row, :length].tolist(), VOCAB, buckets)
            assert (index[row][~real] == buckets).all()  # padding points at the zero row
            # the bag at unit length, whatever the name's length
            torch.testing.assert_close((weights[row] ** 2).sum(), torch.tensor(1.0))


def test_ngram_channel_adds_to_the_logits_equally_in_both_engines_and_learns():
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, "gru", HIDDEN, ngram_buckets=50)).double()
    ids, lengths = padded_batch(MIXED)
    plain = model(ids, lengths)
    assert model.ngram.table.weight.abs().sum() == 0  # starts as the recurrent model alone
    with torch.no_grad():
        model.ngram.table.weight[:50].normal_()
    with_channel = model(ids, lengths)
    torch.testing.assert_close(with_channel - plain, model.ngram(ids, lengths))
    assert not torch.allclose(with_channel, plain)
    torch.testing.assert_close(model.with_engine("fused")(ids, lengths), with_channel)
    with_channel.sum().backward()
    grad = model.ngram.table.weight.grad
    assert grad[:50].abs().sum() > 0 and grad[50].abs().sum() == 0  # padding's row never learns
    with pytest.raises(ValueError, match="ngram_buckets"):
        ModelConfig(VOCAB, CLASSES, ngram_buckets=-1)
