"""The three recurrent cells of the experiment, written by hand from ``nn.Linear``.

Each cell maps one step's input and the previous state to the next state::

    cell = CELLS["lstm"](input_size=56, hidden_size=256)
    state = cell.init_state(batch_size=8)
    state = cell(x_t, state)          # x_t: (B, input_size), state: (h,) or (h, c)

The gate weights are laid out as torch's ``nn.RNNCell``, ``nn.LSTMCell`` (i, f, g, o)
and ``nn.GRUCell`` (r, z, n) lay them out, with ``x2h`` holding ``weight_ih``/``bias_ih``
and ``h2h`` holding ``weight_hh``/``bias_hh``, so weights copy across and tests can
assert that the outputs agree.

``forward`` is the textbook step; ``step`` takes the input already projected by
``x2h``. A one-hot input times a weight matrix is a row lookup, so the classifier
projects a whole batch of names once, outside the time loop, and calls ``step``.

``CELLS`` is the one registry of cells: each class carries what the rest of namelab
looks up about it (its name, its title in the report, its colour, its gate count and
torch's fused layer that runs the same weights), so adding a cell means adding a class.
"""

from __future__ import annotations

import math

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class Cell(nn.Module):
    """What every cell shares: the two projections, torch's initialization, a zero state."""

    name: str = ""
    title: str = ""  # how the report names it
    color: str = "#000000"  # its colour in the report's figures (colour-blind safe palette)
    num_gates: int = 1
    num_states: int = 1
    fused: type[nn.RNNBase] = nn.RNN  # torch's layer that runs the same weights

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, self.num_gates * hidden_size)
        self.h2h = nn.Linear(hidden_size, self.num_gates * hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's recurrent layers draw every weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def init_state(self, batch_size: int, device=None, dtype=torch.float32) -> State:
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return tuple(zeros for _ in range(self.num_states))

    def forward(self, x_t: torch.Tensor, state: State) -> State:
        return self.step(self.x2h(x_t), state)

    def step(self, xw_t: torch.Tensor, state: State) -> State:
        raise NotImplementedError


class RNNCell(Cell):
    """Vanilla RNN: ``h_t = tanh(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)``."""

    name, title, color, fused = "rnn", "RNN", "#D55E00", nn.RNN

    def step(self, xw_t: torch.Tensor, state: State) -> State:
        (h,) = state
        return (torch.tanh(xw_t + self.h2h(h)),)


class LSTMCell(Cell):
    """LSTM with input, forget and output gates and a cell state::

        i, f, g, o = W_x x_t + b_x + W_h h_{t-1} + b_h      (split in four)
        C_t = sigmoid(f) * C_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(C_t)
    """

    name, title, color, fused = "lstm", "LSTM", "#0072B2", nn.LSTM
    num_gates = 4
    num_states = 2

    def step(self, xw_t: torch.Tensor, state: State) -> State:
        h, c = state
        i, f, g, o = (xw_t + self.h2h(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class GRUCell(Cell):
    """GRU with reset and update gates::

        r = sigmoid(W_xr x_t + b_xr + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_xz x_t + b_xz + W_hz h_{t-1} + b_hz)
        n = tanh(W_xn x_t + b_xn + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    The reset gate scales the hidden state's contribution to the candidate, as in
    torch and cuDNN (the original paper resets ``h`` before the product; the two
    train alike, and this form lets the fused layer run the same weights).
    """

    name, title, color, fused = "gru", "GRU", "#009E73", nn.GRU
    num_gates = 3

    def step(self, xw_t: torch.Tensor, state: State) -> State:
        (h,) = state
        x_r, x_z, x_n = xw_t.chunk(3, dim=1)
        h_r, h_z, h_n = self.h2h(h).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return ((1 - z) * n + z * h,)


CELLS: dict[str, type[Cell]] = {cls.name: cls for cls in (RNNCell, LSTMCell, GRUCell)}


def cell_class(name: str) -> type[Cell]:
    """The registered cell called ``name``; the one place an unknown cell is refused."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    return CELLS[name]


def make_cell(name: str, input_size: int, hidden_size: int) -> Cell:
    return cell_class(name)(input_size, hidden_size)
