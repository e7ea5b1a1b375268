"""The fast engine (engine.py) computes what stepping the cells computes, gradients included.

    .venv/bin/python -m pytest tests/test_engine.py -q

The reference is autograd through the plain ``cell.step`` loop (``hidden_states``,
then each name's last real step); torch's fused layers are a second, independent one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from namelab.core.engine import check_batch, pack, run, run_cell
from namelab.core.model import CharClassifier, ModelConfig

# Every test runs on both LSTM kernels (conftest.kernel): torch's operators and the C++ pass.
pytestmark = pytest.mark.usefixtures("kernel")

CELL_NAMES = ("rnn", "lstm", "gru")
VOCAB, CLASSES, HIDDEN = 9, 4, 6


def padded_batch(lengths: list[int], seed: int = 0, pad_with: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids in unsorted, mixed-length rows, right-padded with ``pad_with``."""
    gen = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    for row, length in enumerate(lengths):
        ids[row, length:] = pad_with
    return ids, lengths_t


MIXED = [3, 7, 1, 7, 2, 5, 4, 1]  # unsorted, ties, length-1 names, padding in most rows


def reference_last_hidden(model: CharClassifier, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Autograd through ``cell.step`` over the padded batch, then each name's last real step."""
    states = model.hidden_states(ids, lengths)  # (B, T, H)
    return states[torch.arange(ids.shape[0]), lengths - 1]


def loss_and_grads(model: CharClassifier, last_hidden, ids, lengths, targets, seed: int):
    """Loss of the full classifier (dropout included) built on ``last_hidden``, and every gradient."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout mask for both engines
    h = model.dropout(last_hidden(ids, lengths))
    log_probs = F.log_softmax(model.out(h), dim=-1)
    loss = F.nll_loss(log_probs, targets)
    loss.backward()
    return log_probs.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_engine_matches_autograd_through_cell_step(cell, dtype):
    torch.manual_seed(1)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN, "hand", dropout=0.4)).to(dtype).train()
    ids, lengths = padded_batch(MIXED, seed=2)
    targets = torch.randint(0, CLASSES, (len(MIXED),))
    fast_out, fast_grads = loss_and_grads(model, model.last_hidden, ids, lengths, targets, seed=3)
    reference = lambda i, n: reference_last_hidden(model, i, n)  # noqa: E731
    ref_out, ref_grads = loss_and_grads(model, reference, ids, lengths, targets, seed=3)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fast_out, ref_out, rtol=tol, atol=tol)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert ref_grads[name].abs().sum() > 0, f"{name} got no gradient: the test would prove nothing"
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=tol, atol=tol, msg=name)
    # The full forward (the path training uses) is the engine's.
    torch.manual_seed(3)
    torch.testing.assert_close(model(ids, lengths).detach().log_softmax(dim=-1), fast_out, rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradcheck_float64(cell):
    torch.manual_seed(0)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    hidden = 3
    ids, lengths = padded_batch([2, 4, 1, 3], seed=5)
    weights = [
        (torch.randn(gates * hidden, VOCAB, dtype=torch.float64) * 0.7).requires_grad_(),
        (torch.randn(gates * hidden, hidden, dtype=torch.float64) * 0.7).requires_grad_(),
        (torch.randn(gates * hidden, dtype=torch.float64) * 0.5).requires_grad_(),
        (torch.randn(gates * hidden, dtype=torch.float64) * 0.5).requires_grad_(),
    ]
    assert torch.autograd.gradcheck(lambda *w: run(cell, ids, lengths, *w), weights, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_retained_graph_runs_backward_twice_alike(cell):
    # The backward works in buffers of its own: what the forward kept stays intact.
    torch.manual_seed(2)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN))
    ids, lengths = padded_batch(MIXED, seed=3)
    loss = model.last_hidden(ids, lengths).square().sum()
    params = list(model.cell.parameters())
    first = torch.autograd.grad(loss, params, retain_graph=True)
    second = torch.autograd.grad(loss, params)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_engine_matches_torch_fused_layers(cell):
    torch.manual_seed(4)
    hand = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN, "hand"))
    fused = hand.with_engine("fused").double()  # same float32 weights, both run in float64
    hand = hand.double()
    ids, lengths = padded_batch(MIXED, seed=6)
    targets = torch.randint(0, CLASSES, (len(MIXED),))
    hand_out, hand_grads = loss_and_grads(hand, hand.last_hidden, ids, lengths, targets, seed=0)
    fused_out, fused_grads = loss_and_grads(fused, fused.last_hidden, ids, lengths, targets, seed=0)
    torch.testing.assert_close(hand_out, fused_out, rtol=1e-10, atol=1e-10)
    for name, tensor in hand.recurrent_weights().items():
        other = fused.recurrent_weights()[name]
        torch.testing.assert_close(tensor.grad, other.grad, rtol=1e-10, atol=1e-10, msg=name)
    torch.testing.assert_close(hand.out.weight.grad, fused.out.weight.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_padding_and_row_order_do_not_change_a_name(cell):
    torch.manual_seed(7)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN)).eval()
    ids, lengths = padded_batch(MIXED, seed=8)
    noisy_ids, _ = padded_batch(MIXED, seed=8, pad_with=VOCAB - 1)  # real letters in the padding
    wider = torch.cat([ids, torch.zeros(len(MIXED), 3, dtype=ids.dtype)], dim=1)
    base = model(ids, lengths)
    assert not torch.allclose(base[0], base[1])  # different names, different outputs
    torch.testing.assert_close(model(noisy_ids, lengths), base, rtol=0, atol=0)
    torch.testing.assert_close(model(wider, lengths), base, rtol=0, atol=0)
    order = torch.randperm(len(MIXED), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(model(ids[order], lengths[order]), base[order], rtol=1e-6, atol=1e-6)
    for row in range(len(MIXED)):  # alone in its batch, unpadded
        alone = model(ids[row : row + 1, : lengths[row]], lengths[row : row + 1])
        torch.testing.assert_close(alone[0], base[row], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_inference_mode_gives_the_training_path_result(cell):
    torch.manual_seed(10)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN)).eval()
    ids, lengths = padded_batch(MIXED, seed=11)
    with_grad = model(ids, lengths)
    assert with_grad.requires_grad
    with torch.inference_mode():
        inferred = model(ids, lengths)
    torch.testing.assert_close(inferred, with_grad.detach(), rtol=1e-6, atol=1e-6)


def test_pack_plan_places_every_character():
    ids, lengths = padded_batch([2, 4, 1, 3], seed=12)
    plan = pack(ids, lengths)
    assert plan.batch_sizes == [4, 3, 2, 1]  # names longer than t, at each step t
    assert plan.offsets == [0, 4, 7, 9]
    assert plan.num_tokens == 10
    # Each name's last character sits at its last_rows entry.
    for row in range(4):
        assert plan.ids[plan.last_rows[row]] == ids[row, lengths[row] - 1]
    # The longest name (row 1) is first at every step.
    assert plan.sorted_indices[0] == 1
    assert [int(plan.ids[off]) for off in plan.offsets] == ids[1].tolist()


@pytest.mark.parametrize(
    "lengths, message",
    [
        ([3, 0], "between 1 and the padded width"),
        ([3, 6], "between 1 and the padded width"),
        ([3], "one entry per name"),
    ],
)
def test_bad_lengths_are_refused_with_a_reason(lengths, message):
    ids = torch.ones(2, 4, dtype=torch.int64)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, "lstm", HIDDEN))
    with pytest.raises(ValueError, match=message):
        model(ids, torch.tensor(lengths))
    with pytest.raises(ValueError, match=message):
        model.with_engine("fused")(ids, torch.tensor(lengths))


def test_check_batch_refuses_an_empty_batch_and_unknown_cells():
    with pytest.raises(ValueError, match="empty"):
        check_batch(torch.ones(0, 3, dtype=torch.int64), torch.ones(0, dtype=torch.int64))
    ids, lengths = padded_batch([2, 1])
    w = torch.zeros(4, VOCAB), torch.zeros(4, 4), torch.zeros(4), torch.zeros(4)
    with pytest.raises(ValueError, match="choose one of rnn, lstm, gru"):
        run("transformer", ids, lengths, *w)
    with pytest.raises(TypeError, match="no fast engine"):
        run_cell(torch.nn.Linear(2, 2), ids, lengths)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_engine_runs_on_cuda_like_on_cpu(cell):
    torch.manual_seed(13)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, cell, HIDDEN)).double()
    ids, lengths = padded_batch(MIXED, seed=14)
    targets = torch.randint(0, CLASSES, (len(MIXED),))
    cpu_out, cpu_grads = loss_and_grads(model, model.last_hidden, ids, lengths, targets, seed=0)
    gpu = model.to("cuda")
    gpu_out, gpu_grads = loss_and_grads(gpu, gpu.last_hidden, ids.cuda(), lengths.cuda(), targets.cuda(), seed=0)
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=1e-9, atol=1e-9)
    for name, grad in cpu_grads.items():
        torch.testing.assert_close(gpu_grads[name].cpu(), grad, rtol=1e-9, atol=1e-9, msg=name)
