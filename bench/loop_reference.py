"""The original experiment's training loop, kept as the speed reference: one name at a time.

    python bench/loop_reference.py --cell lstm --names 1000    # prints names per second

The cells are the report's appendix A listings, reproduced as printed (including the
RNN that applies no tanh to its hidden state, and the LSTM that applies dropout to
the hidden state it feeds back); the training step is the PyTorch char-RNN tutorial's
that the lab followed: a one-hot ``(1, 57)`` tensor per character, a zero initial
state, ``NLLLoss`` on the output after the last character, then plain SGD
``p.data.add_(p.grad, alpha=-lr)`` with ``lr = 0.005``. The report's input is 57
one-hot columns; namelab's vocabulary also has 57 ids (padding, unknown, 55
letters), so the same names feed both loops.

Only the speed of this loop is used (bench/speed.py): it is not part of namelab.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Sequence

import torch
from torch import nn

LEARNING_RATE = 0.005  # the char-RNN tutorial's


class RNN(nn.Module):
    """Appendix A.1 (``BaseModel`` there only stores the sizes)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)  # as listed: no tanh
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


class LSTM(nn.Module):
    """Appendix A.2."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout_rate: float = 0.2):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.forget_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.output_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.cell_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout_rate)
        self.output_layer = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden, cell):
        combined = torch.cat((input, hidden), 1)
        forget_gate_value = torch.sigmoid(self.forget_gate(combined))
        input_gate_value = torch.sigmoid(self.input_gate(combined))
        output_gate_value = torch.sigmoid(self.output_gate(combined))
        cell_gate_value = torch.tanh(self.cell_gate(combined))
        cell = forget_gate_value * cell + input_gate_value * cell_gate_value
        hidden = output_gate_value * torch.tanh(cell)
        hidden = self.dropout(hidden)
        output = self.output_layer(hidden)
        output = self.softmax(output)
        return output, hidden, cell

    def initHidden(self):
        return torch.zeros(1, self.hidden_size), torch.zeros(1, self.hidden_size)


class GRU(nn.Module):
    """Appendix A.3."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.reset_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.update_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.h_tilde = nn.Linear(input_size + hidden_size, hidden_size)
        self.output_layer = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        reset_gate_value = torch.sigmoid(self.reset_gate(combined))
        update_gate_value = torch.sigmoid(self.update_gate(combined))
        reset_hidden = reset_gate_value * hidden
        combined_reset = torch.cat((input, reset_hidden), 1)
        h_tilde_value = torch.tanh(self.h_tilde(combined_reset))
        hidden = (1 - update_gate_value) * hidden + update_gate_value * h_tilde_value
        output = self.output_layer(hidden)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


MODELS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def make_model(cell: str, input_size: int, hidden_size: int, output_size: int) -> nn.Module:
    if cell not in MODELS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(MODELS)}")
    return MODELS[cell](input_size, hidden_size, output_size)


def line_to_tensor(ids: Sequence[int], input_size: int) -> torch.Tensor:
    """The tutorial's ``lineToTensor``: one-hot ``(len, 1, input_size)``."""
    tensor = torch.zeros(len(ids), 1, input_size)
    for li, letter in enumerate(ids):
        tensor[li][0][letter] = 1
    return tensor


def train_one(model: nn.Module, category_tensor: torch.Tensor, line_tensor: torch.Tensor, criterion) -> float:
    """The tutorial's ``train``: one name, backpropagation through it, one SGD step."""
    if isinstance(model, LSTM):
        hidden, cell = model.initHidden()
    else:
        hidden = model.initHidden()
    model.zero_grad()
    for i in range(line_tensor.size()[0]):
        if isinstance(model, LSTM):
            output, hidden, cell = model(line_tensor[i], hidden, cell)
        else:
            output, hidden = model(line_tensor[i], hidden)
    loss = criterion(output, category_tensor)
    loss.backward()
    for p in model.parameters():
        p.data.add_(p.grad.data, alpha=-LEARNING_RATE)
    return loss.item()


def train_names(model: nn.Module, examples: Sequence[tuple[Sequence[int], int]], input_size: int) -> float:
    """Train on ``(ids, label)`` pairs one by one, as the original loop did; seconds taken.

    Building each name's one-hot tensor is timed, as it was part of the original loop
    (and namelab's batching is part of its own timings).
    """
    criterion = nn.NLLLoss()
    model.train()
    start = time.perf_counter()
    for ids, label in examples:
        train_one(model, torch.tensor([label], dtype=torch.long), line_to_tensor(ids, input_size), criterion)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    # Only the driver reads the dataset through namelab: the tutorial's loop above stands alone.
    from namelab.data.corpus import Corpus
    from namelab.data.download import resolve_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=list(MODELS), default="lstm")
    parser.add_argument("--names", type=int, default=1000, help="train names to time (a random subsample)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--data-dir", default=None, help="names folder (default: $NAMELAB_DATA)")
    args = parser.parse_args(argv)
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    train = corpus.split(seed=0).train
    sample = random.Random(0).sample(train, min(args.names, len(train)))
    examples = [(corpus.vocab.encode(e.name), e.label) for e in sample]
    torch.manual_seed(0)
    model = make_model(args.cell, len(corpus.vocab), args.hidden_size, corpus.num_classes)
    seconds = train_names(model, examples, len(corpus.vocab))
    print(f"{args.cell}: {len(examples) / seconds:.0f} names/s ({len(examples)} names in {seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
