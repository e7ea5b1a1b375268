"""Tests for namelab.core.cells and the two engines of namelab.core.model.CharClassifier.

    .venv/bin/python -m pytest tests/test_cells.py -q

The hand-written cells are checked against torch's nn.RNNCell / nn.LSTMCell / nn.GRUCell
with copied weights, the hand engine against the fused one, and both against a step-by-step
reference built from torch's cells, for outputs and gradients, on batches of mixed lengths.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from namelab.core.cells import CELLS, GRUCell, LSTMCell, RNNCell, make_cell
from namelab.core.model import CharClassifier, ModelConfig

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
ATOL = 1e-5
VOCAB_SIZE, NUM_CLASSES, HIDDEN = 12, 4, 8
ALL_CELLS = pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])


def mixed_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (padding 0, real characters 1..VOCAB_SIZE-1) and their lengths."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, VOCAB_SIZE, (n,), generator=gen)
    return ids, torch.tensor(lengths, dtype=torch.int64)


def make_model(cell: str, engine: str = "hand", dropout: float = 0.0, seed: int = 0) -> CharClassifier:
    torch.manual_seed(seed)
    return CharClassifier(ModelConfig(VOCAB_SIZE, NUM_CLASSES, cell, HIDDEN, engine, dropout))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=ATOL, msg=lambda m: f"{what}: {m}")


# --- the registry -------------------------------------------------------------------------


def test_registry_holds_the_three_cells() -> None:
    assert CELLS == {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
    assert isinstance(make_cell("gru", 5, 3), GRUCell)


def test_unknown_cell_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown cell 'transformer'.*rnn, lstm, gru"):
        make_cell("transformer", 5, 3)
    with pytest.raises(ValueError, match="rnn, lstm, gru"):
        CharClassifier(ModelConfig(VOCAB_SIZE, NUM_CLASSES, "transformer"))


def test_unknown_engine_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="hand, fused"):
        CharClassifier(ModelConfig(VOCAB_SIZE, NUM_CLASSES, "lstm", engine="cudnn"))


@pytest.mark.parametrize(("cell", "num_states"), [("rnn", 1), ("lstm", 2), ("gru", 1)])
def test_one_signature_forward_x_state_to_state(cell: str, num_states: int) -> None:
    module = make_cell(cell, input_size=5, hidden_size=3)
    state = module.init_state(batch_size=4)
    assert isinstance(state, tuple) and len(state) == num_states
    assert all(s.shape == (4, 3) and not s.any() for s in state)
    new_state = module(torch.randn(4, 5), state)
    assert isinstance(new_state, tuple) and len(new_state) == num_states
    assert all(s.shape == (4, 3) for s in new_state)


# --- hand cells against torch's cells -----------------------------------------------------


def copy_into_torch_cell(hand: nn.Module, theirs: nn.Module) -> None:
    with torch.no_grad():
        theirs.weight_ih.copy_(hand.x2h.weight)
        theirs.bias_ih.copy_(hand.x2h.bias)
        theirs.weight_hh.copy_(hand.h2h.weight)
        theirs.bias_hh.copy_(hand.h2h.bias)


@ALL_CELLS
def test_hand_cell_matches_torch_cell_outputs_and_gradients(cell: str) -> None:
    torch.manual_seed(1)
    input_size, hidden, batch, steps = 7, 6, 5, 6
    hand = make_cell(cell, input_size, hidden)
    theirs = TORCH_CELLS[cell](input_size, hidden)
    copy_into_torch_cell(hand, theirs)
    xs = torch.randn(steps, batch, input_size)
    x_hand, x_theirs = xs.clone().requires_grad_(), xs.clone().requires_grad_()
    # Start from a non-zero state so the h2h path is exercised from the first step.
    h0 = torch.randn(batch, hidden)
    c0 = torch.randn(batch, hidden)
    state_hand = (h0, c0) if cell == "lstm" else (h0,)
    state_theirs = (h0, c0) if cell == "lstm" else h0
    outputs_hand, outputs_theirs = [], []
    for t in range(steps):
        state_hand = hand(x_hand[t], state_hand)
        state_theirs = theirs(x_theirs[t], state_theirs)
        outputs_hand.append(torch.cat(state_hand, dim=1))
        outputs_theirs.append(torch.cat(state_theirs, dim=1) if cell == "lstm" else state_theirs)
    out_hand, out_theirs = torch.stack(outputs_hand), torch.stack(outputs_theirs)
    assert_close(out_hand, out_theirs, f"{cell} states")
    probe = torch.randn_like(out_hand)  # a loss that weighs every state differently
    (out_hand * probe).sum().backward()
    (out_theirs * probe).sum().backward()
    pairs = {
        "weight_ih": (hand.x2h.weight, theirs.weight_ih),
        "bias_ih": (hand.x2h.bias, theirs.bias_ih),
        "weight_hh": (hand.h2h.weight, theirs.weight_hh),
        "bias_hh": (hand.h2h.bias, theirs.bias_hh),
    }
    for name, (mine, ref) in pairs.items():
        assert_close(mine.grad, ref.grad, f"{cell} grad {name}")
    assert_close(x_hand.grad, x_theirs.grad, f"{cell} grad input")


# --- the two engines, and a reference built from torch's cells ----------------------------


def reference_logits(model: CharClassifier, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each name on its own, one-hot characters through torch's cell, up to its last character."""
    weights = model.recurrent_weights()
    theirs = TORCH_CELLS[model.config.cell](model.config.vocab_size, model.config.hidden_size)
    with torch.no_grad():
        for name, tensor in weights.items():
            getattr(theirs, name).copy_(tensor)
    rows = []
    for row, n in zip(ids, lengths.tolist()):
        state = None
        for t in range(n):
            x = F.one_hot(row[t : t + 1], model.config.vocab_size).float()
            state = theirs(x, state)
        h = state[0] if model.config.cell == "lstm" else state
        rows.append(model.out(h)[0])
    return torch.stack(rows)


@ALL_CELLS
def test_hand_engine_matches_torch_cells_step_by_step(cell: str) -> None:
    model = make_model(cell).eval()
    ids, lengths = mixed_batch([5, 1, 3, 7, 2])
    with torch.no_grad():
        assert_close(model(ids, lengths), reference_logits(model, ids, lengths), f"{cell} hand vs reference")


def engine_gradients(model: CharClassifier, ids: torch.Tensor, lengths: torch.Tensor, probe: torch.Tensor) -> dict:
    model.zero_grad(set_to_none=True)
    log_probs = model(ids, lengths).log_softmax(dim=-1)
    (log_probs * probe).sum().backward()
    grads = {name: tensor.grad.clone() for name, tensor in model.recurrent_weights().items()}
    grads["out.weight"], grads["out.bias"] = model.out.weight.grad.clone(), model.out.bias.grad.clone()
    return {"log_probs": log_probs.detach(), **grads}


@ALL_CELLS
@pytest.mark.parametrize("start", ["hand", "fused"])
def test_hand_and_fused_engines_agree_on_outputs_and_gradients(cell: str, start: str) -> None:
    model = make_model(cell, engine=start, seed=2).train()  # dropout 0: train mode is deterministic
    other = model.with_engine("fused" if start == "hand" else "hand")
    assert other.config.engine != model.config.engine
    ids, lengths = mixed_batch([6, 2, 9, 1, 4, 9, 3], seed=5)
    probe = torch.randn(len(lengths), NUM_CLASSES, generator=torch.Generator().manual_seed(3))
    mine, theirs = engine_gradients(model, ids, lengths, probe), engine_gradients(other, ids, lengths, probe)
    expected = {"log_probs", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "out.weight", "out.bias"}
    assert set(mine) == set(theirs) == expected
    for name in mine:
        assert_close(mine[name], theirs[name], f"{cell} {start} vs other engine: {name}")
    # Sanity: the gradients are not trivially zero (a detached path would agree vacuously).
    assert mine["weight_hh"].abs().sum() > 0 and mine["weight_ih"].abs().sum() > 0


def test_with_impl_copies_weights_and_mode_and_is_independent() -> None:
    model = make_model("lstm", dropout=0.25).train()
    fused = model.with_engine("fused")
    assert fused.training and fused.config.dropout == 0.25 and fused.config.hidden_size == HIDDEN
    for name, tensor in model.recurrent_weights().items():
        assert torch.equal(fused.recurrent_weights()[name], tensor)
    with torch.no_grad():
        model.out.weight.add_(1.0)
        model.recurrent_weights()["weight_hh"].add_(1.0)
    assert not torch.equal(fused.out.weight, model.out.weight)
    assert not torch.equal(fused.recurrent_weights()["weight_hh"], model.recurrent_weights()["weight_hh"])
    assert not model.eval().with_engine("fused").training


# --- padding ------------------------------------------------------------------------------


@ALL_CELLS
@pytest.mark.parametrize("engine", ["hand", "fused"])
def test_padding_never_changes_a_result(cell: str, engine: str) -> None:
    model = make_model(cell, engine=engine, seed=4).eval()
    ids, lengths = mixed_batch([3, 10, 1, 7, 3], seed=6)
    with torch.no_grad():
        batched = model(ids, lengths)
        for row, n in enumerate(lengths.tolist()):
            alone = model(ids[row : row + 1, :n], lengths[row : row + 1])
            assert_close(batched[row : row + 1], alone, f"{cell}/{engine} name {row} alone vs in a batch")
        # Whatever sits in the padded positions is never read.
        noisy = ids.clone()
        padding = torch.arange(ids.shape[1])[None, :] >= lengths[:, None]
        noisy[padding] = torch.randint(1, VOCAB_SIZE, (int(padding.sum()),), generator=torch.Generator().manual_seed(0))
        assert_close(model(noisy, lengths), batched, f"{cell}/{engine} garbage in the padding")
        assert_close(batched.softmax(dim=1).sum(dim=1), torch.ones(len(lengths)), "probabilities sum to one")


# --- dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["hand", "fused"])
def test_dropout_is_active_in_train_mode_and_off_in_eval(engine: str) -> None:
    model = make_model("gru", engine=engine, dropout=0.5, seed=7)
    plain = make_model("gru", engine=engine, dropout=0.0, seed=7)  # same seed: same weights
    ids, lengths = mixed_batch([4, 6, 2, 5, 3, 6, 1, 2], seed=8)
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        first, second = model(ids, lengths), model(ids, lengths)
        assert not torch.allclose(first, second)
        model.eval()
        plain.eval()
        expected = plain(ids, lengths)
        assert_close(model(ids, lengths), expected, "eval mode with dropout")
        assert_close(model(ids, lengths), expected, "eval mode again")
        assert not torch.allclose(first, expected)
