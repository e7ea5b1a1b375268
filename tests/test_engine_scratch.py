"""The engine's backward reuses scratch memory between calls (engine._ScratchMemory), safely.

    .venv/bin/python -m pytest tests/test_engine_scratch.py -q

What a backward hands back must never be a view of the scratch: the next backward
overwrites it. Gradients kept from one call must survive a second call on another batch.
"""

from __future__ import annotations

import pytest
import torch

from namelab.core import engine
from namelab.core.engine import run

# Every test runs on both LSTM kernels (conftest.kernel): torch's operators and the C++ pass.
pytestmark = pytest.mark.usefixtures("kernel")

CELL_NAMES = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
VOCAB, HIDDEN = 9, 6


def weights(cell: str, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    G = GATES[cell]
    shapes = [(G * HIDDEN, VOCAB), (G * HIDDEN, HIDDEN), (G * HIDDEN,), (G * HIDDEN,)]
    return [(torch.randn(*s, generator=gen) * 0.5).requires_grad_() for s in shapes]


def batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    return ids, torch.tensor(lengths)


def grads(cell: str, w: list[torch.Tensor], ids, lengths) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(run(cell, ids, lengths, *w).square().sum(), w)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_kept_from_one_backward_survive_the_next(cell):
    w = weights(cell, seed=0)
    first_batch, second_batch = batch([5, 3, 4, 1], seed=1), batch([7, 7, 2, 6, 5, 3], seed=2)
    grads(cell, w, *batch([9] * 8, seed=3))  # a scratch block large enough for both batches below
    block = engine._SCRATCH.blocks[torch.float32]
    first = grads(cell, w, *first_batch)
    expected = [g.clone() for g in first]
    second = grads(cell, w, *second_batch)  # written over the same memory
    assert engine._SCRATCH.blocks[torch.float32].data_ptr() == block.data_ptr()
    for kept, before in zip(first, expected):
        torch.testing.assert_close(kept, before, rtol=0, atol=0)
    # And the second call's gradients are what a call on a cold scratch computes (to
    # rounding: a multithreaded product need not sum in the same order twice; a read of
    # stale scratch would be off by far more).
    engine._SCRATCH.blocks.clear()
    for warm, cold in zip(second, grads(cell, w, *second_batch)):
        torch.testing.assert_close(warm, cold, rtol=1e-6, atol=1e-6)


def test_the_scratch_is_reused_not_reallocated():
    w = weights("lstm", seed=3)
    ids, lengths = batch([6, 4, 5, 2], seed=4)
    grads("lstm", w, ids, lengths)
    block = engine._SCRATCH.blocks[torch.float32]
    grads("lstm", w, *batch([5, 4, 3, 1], seed=5))  # fewer characters: fits in the block
    assert engine._SCRATCH.blocks[torch.float32].data_ptr() == block.data_ptr()


def test_a_request_above_the_limit_gets_fresh_memory(monkeypatch):
    monkeypatch.setattr(engine._ScratchMemory, "limit_bytes", 16)
    scratch = engine._ScratchMemory()
    like = torch.zeros(1)
    (big,) = scratch.take(like, (4, 8))
    assert big.shape == (4, 8) and not scratch.blocks
