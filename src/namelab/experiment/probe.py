"""Gradient-flow probe: how much of the loss's gradient reaches each step of a name.

    examples = probe_examples(split.test)                 # the longest test names
    flow = gradient_flow(model, examples, corpus.vocab)   # any CharClassifier, any engine
    flow.norms[d]        # mean ‖dL/dh_t‖ at d steps before the name's last character
    flow.ratio()         # norms[-1] / norms[0]: ≪ 1 means the gradient vanishes

The vanishing-gradient argument says that in a vanilla RNN the gradient reaching
``h_t`` shrinks roughly geometrically with the distance to the loss, while the
additive state update of gated cells keeps it alive. This module measures it: the
model's own cell is run step by step with the hand engine (``cell.step``), every
``h_t`` keeps its gradient, and the loss is the negative log-likelihood of each
name's language read at its last character, exactly where the classifier reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.model import CharClassifier
from ..data.corpus import Example, Vocab, encode_batch

PROBE_NAMES = 64
PROBE_MIN_LENGTH = 12  # the vanishing-gradient argument needs a dozen steps to show
PROBE_MIN_NAMES = 8


@dataclass
class GradientFlow:
    """Mean gradient norm per distance from the end: ``norms[0]`` is the last character."""

    norms: np.ndarray  # (D,)
    n_names: int

    @property
    def distances(self) -> np.ndarray:
        return np.arange(len(self.norms))

    def ratio(self) -> float:
        """Gradient norm at the farthest distance probed over the norm at the last step."""
        return float(self.norms[-1] / self.norms[0])


def probe_examples(
    examples: Sequence[Example],
    max_names: int = PROBE_NAMES,
    min_length: int = PROBE_MIN_LENGTH,
    min_names: int = PROBE_MIN_NAMES,
) -> list[Example]:
    """A fixed batch of long names: up to ``max_names`` of the longest with ``min_length`` characters or more.

    When fewer than ``min_names`` names are that long (a small dataset), the
    ``max_names`` longest names are used whatever their length; the distances the
    probe can measure are then fewer (see :func:`gradient_flow`). Ties are broken by
    name so the batch is the same on every call.
    """
    if not examples:
        raise ValueError("the gradient probe needs at least one name; the test split is empty")
    ranked = sorted(examples, key=lambda e: (-len(e.name), e.name, e.label))
    long_enough = [e for e in ranked if len(e.name) >= min_length]
    chosen = long_enough if len(long_enough) >= min_names else ranked
    return chosen[:max_names]


def gradient_flow(model: CharClassifier, examples: Sequence[Example], vocab: Vocab) -> GradientFlow:
    """Mean ``‖dL_i/dh_t‖`` over the names, for ``t`` = 0 … D-1 steps before each name's end.

    ``L_i`` is name ``i``'s own negative log-likelihood at its last character (dropout
    off), so each name's gradient is unaffected by the others in the batch. D is the
    length of the shortest name, so every name contributes at every distance. A fused
    model is converted to the hand engine first (same weights, same function); the
    model passed in is left as it was (mode and parameter gradients).
    """
    if not examples:
        raise ValueError("the gradient probe needs at least one name")
    hand = model.with_engine("hand") if model.config.engine != "hand" else model
    was_training = hand.training
    hand.eval()  # dropout would scale some gradients by 1/(1-p) at random
    device = hand.out.weight.device
    ids, lengths = encode_batch([e.name for e in examples], vocab)
    ids, lengths = ids.to(device), lengths.to(device)
    targets = torch.tensor([e.label for e in examples], dtype=torch.int64, device=device)
    cell = hand.cell
    try:
        with torch.enable_grad():
            one_hot = F.one_hot(ids, hand.config.vocab_size).to(hand.out.weight.dtype)  # (B, T, V)
            xw = cell.x2h(one_hot)  # (B, T, G*H)
            state = cell.init_state(ids.shape[0], device=device, dtype=xw.dtype)
            hidden = []
            for t in range(ids.shape[1]):
                state = cell.step(xw[:, t], state)
                hidden.append(state[0])
            rows = torch.arange(ids.shape[0], device=device)
            last = torch.stack(hidden, dim=1)[rows, lengths - 1]  # (B, H)
            log_probs = F.log_softmax(hand.out(last), dim=-1)
            # A sum, not a mean: each name's gradient is then its own dL_i/dh_t. autograd.grad
            # rather than backward() leaves the parameters' .grad alone.
            loss = F.nll_loss(log_probs, targets, reduction="sum")
            grads = torch.stack(torch.autograd.grad(loss, hidden), dim=1)  # (B, T, H)
        norms = grads.norm(dim=2)  # (B, T)
        depth = int(lengths.min())
        # Column d holds step lengths_i - 1 - d of every name i.
        steps = (lengths.unsqueeze(1) - 1 - torch.arange(depth, device=device)).clamp(min=0)
        per_distance = norms.gather(1, steps).mean(dim=0)  # (D,)
    finally:
        hand.train(was_training)
    return GradientFlow(norms=per_distance.detach().cpu().double().numpy(), n_names=len(examples))
