"""Data-parallel training: the ranks' shares add up to the single-process batch, and
torchrun with 2 processes trains the weights one process does.

    .venv/bin/python -m pytest tests/test_ddp.py -q
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers import separable_names
from namelab.data import Example, Vocab, batches, normalize
from namelab.ddp import ProcessGroup, rank_share, share_batch, share_loss
from namelab.model import CharClassifier


def examples() -> list[Example]:
    names = separable_names(per_class=9)
    return [Example(normalize(name), label) for label, group in enumerate(names.values()) for name in group]


def test_rank_shares_are_disjoint_and_cover_everything() -> None:
    items = list(range(11))
    shares = [rank_share(items, ProcessGroup(rank, 3)) for rank in range(3)]
    assert sorted(sum(shares, [])) == items
    assert all(not set(a) & set(b) for i, a in enumerate(shares) for b in shares[i + 1 :])


def test_averaged_share_gradients_equal_the_global_batch_gradient() -> None:
    """What DDP computes (the mean over ranks of each rank's gradient) is the one-process gradient."""
    torch.manual_seed(0)
    model = CharClassifier(len(Vocab()), 3, "lstm", hidden_size=8).double()
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    world = 2
    batch_size = 5  # 27 names: the last global batch has 2 names, one per rank
    for ids, lengths, targets in batches(examples(), Vocab(), batch_size, shuffle=True, seed=4):
        model.zero_grad()
        F.cross_entropy(model(ids, lengths), targets, weight=weights, label_smoothing=0.1).backward()
        want = [p.grad.clone() for p in model.parameters()]
        summed = [torch.zeros_like(p) for p in model.parameters()]
        for rank in range(world + 1):  # a third rank too: it gets no name of the last batch
            group = ProcessGroup(rank, world + 1)
            share_ids, share_lengths, share_targets, scale = share_batch(ids, lengths, targets, group)
            model.zero_grad()
            loss = share_loss(model(share_ids, share_lengths), share_targets, targets, weights, 0.1, group, scale)
            loss.backward()
            summed = [s + p.grad / (world + 1) for s, p in zip(summed, model.parameters())]
        for got, expected in zip(summed, want):
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_one_process_share_is_the_batch() -> None:
    ids, lengths = torch.zeros(3, 4, dtype=torch.int64), torch.tensor([4, 2, 1])
    targets = torch.tensor([0, 1, 2])
    got = share_batch(ids, lengths, targets, ProcessGroup())
    assert got[0] is ids and got[1] is lengths and got[2] is targets and got[3] == 1.0
