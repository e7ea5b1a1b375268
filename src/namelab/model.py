"""CharClassifier: one-hot characters in, logits over the languages out.

One model, two engines that compute the same function with the same weights::

    model = CharClassifier(vocab_size=56, num_classes=18, cell="lstm", impl="hand")
    logits = model(ids, lengths)             # ids (B, T) int64 padded, lengths (B,)
    fused = model.with_impl("fused")         # same weights, torch's nn.LSTM runs them
    model = CharClassifier.from_config(ModelConfig(vocab_size=56, num_classes=18, cell="gru"))

``hand`` runs namelab's own cells (cells.py); ``fused`` runs torch's
``nn.RNN``/``nn.LSTM``/``nn.GRU``. The output layer reads the hidden state at each
name's last real character, so padding never changes a result.

The hand engine has two paths that compute the same function: ``hidden_states``
steps ``cell.step`` under autograd and keeps every step (for the gradient probe and
as the reference), while ``forward``/``last_hidden`` run engine.py's packed time
loop with a hand-written backward, many times faster (tests/test_engine.py proves
the two equal, gradients included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .cells import cell_class
from .engine import check_batch, run_cell

IMPLS = ("hand", "fused")
# The four recurrent tensors under engine-neutral names (torch's own names).
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a CharClassifier's shape: the one way to build one."""

    vocab_size: int
    num_classes: int
    cell: str = "lstm"
    hidden_size: int = 256
    impl: str = "hand"
    dropout: float = 0.0

    @classmethod
    def from_run_config(cls, config: Mapping, vocab_size: int, num_classes: int) -> "ModelConfig":
        """The model of a run's training config (``asdict(TrainConfig)``, as config.json stores it).

        The training config names the cell ``model``. Every run has written the fields
        of the seed experiment's model, so a missing one means a damaged file (KeyError).
        """
        return cls(
            vocab_size=vocab_size,
            num_classes=num_classes,
            cell=config["model"],
            hidden_size=config["hidden_size"],
            impl=config["impl"],
            dropout=config["dropout"],
        )


class CharClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "lstm",
        hidden_size: int = 256,
        impl: str = "hand",
        dropout: float = 0.0,
    ):
        super().__init__()
        cell_type = cell_class(cell)
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
        self.config = ModelConfig(vocab_size, num_classes, cell, hidden_size, impl, dropout)
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        self.cell_name = cell
        self.hidden_size = hidden_size
        self.impl = impl
        self.dropout_p = dropout
        if impl == "hand":
            self.cell = cell_type(vocab_size, hidden_size)
        else:
            self.rnn = cell_type.fused(vocab_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_classes)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "CharClassifier":
        return cls(config.vocab_size, config.num_classes, config.cell, config.hidden_size, config.impl, config.dropout)

    def hidden_states(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states at every step, ``(B, T, H)``, padding steps included."""
        check_batch(ids, lengths)
        if self.impl == "fused":
            one_hot = F.one_hot(ids, self.vocab_size).to(self.out.weight.dtype)  # (B, T, V)
            outputs, _ = self.rnn(one_hot)
            return outputs
        cell = self.cell
        # one_hot(ids) @ W_ih^T is row ids of W_ih^T: project every step at once.
        xw = F.embedding(ids, cell.x2h.weight.t()) + cell.x2h.bias  # (B, T, G*H)
        state = cell.init_state(ids.shape[0], device=ids.device, dtype=xw.dtype)
        outputs = []
        for t in range(ids.shape[1]):
            state = cell.step(xw[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)

    def last_hidden(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden state after each name's last real character, ``(B, H)``."""
        if self.impl == "hand":
            return run_cell(self.cell, ids, lengths)
        outputs = self.hidden_states(ids, lengths)
        rows = torch.arange(ids.shape[0], device=ids.device)
        return outputs[rows, lengths.to(ids.device) - 1]

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits over the classes, ``(B, C)``: the loss and the probabilities normalize them once."""
        h = self.dropout(self.last_hidden(ids, lengths))
        return self.out(h)

    # -- moving weights between engines -------------------------------------------------

    def recurrent_weights(self) -> dict[str, torch.Tensor]:
        """The recurrent tensors under torch's names, whichever engine holds them."""
        if self.impl == "fused":
            return {name: getattr(self.rnn, f"{name}_l0") for name in WEIGHT_NAMES}
        cell = self.cell
        return {
            "weight_ih": cell.x2h.weight,
            "weight_hh": cell.h2h.weight,
            "bias_ih": cell.x2h.bias,
            "bias_hh": cell.h2h.bias,
        }

    def with_impl(self, impl: str) -> "CharClassifier":
        """A copy of this model run by the other engine, with the same weights."""
        other = CharClassifier.from_config(replace(self.config, impl=impl)).to(self.out.weight.device)
        with torch.no_grad():
            for name, tensor in other.recurrent_weights().items():
                tensor.copy_(self.recurrent_weights()[name])
            other.out.load_state_dict(self.out.state_dict())
        other.train(self.training)
        return other

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
