"""The hand engine's fast path: each cell's whole time loop as one autograd Function.

    h_last = run_cell(model.cell, ids, lengths)      # ids (B, T) padded, lengths (B,) -> (B, H)
    h_last = run("lstm", ids, lengths, w_ih, w_hh, b_ih, b_hh)   # torch's weight layout

``run_cell`` computes what stepping ``cell.step`` over the padded batch and picking
each name's last real step computes (tests/test_engine.py proves it: outputs and
every gradient, float32 and float64, against autograd through ``cell.step`` and
against torch's fused layers), but faster on a CPU, for these reasons (the figures behind
each are in docs/benchmarks.md, "Figures behind the code's decisions"):

* **No padding.** Names are sorted by length inside the batch (as
  ``pack_padded_sequence`` does), so at step ``t`` the names still running are the
  first ``n_t`` rows; buffers are *packed*, one row per real character, and a
  finished name's state is simply never touched again.
* **The input projection is a lookup.** ``one_hot(x) @ W_ih^T`` is a row of
  ``W_ih^T``; it is gathered for every character at once, biases folded in.
* **No product with the zero initial state**: step 0 starts from the lookup alone.
* **One matrix multiply per step** for all gates, forward and backward, written into
  preallocated buffers (``out=``), with no autograd graph of per-step ops.
* **Backward through time by hand.** Every elementwise factor that does not depend
  on the recurrence (the gates' derivatives) is computed once for all characters
  before the backward loop, so a backward step is a few multiplies and one matrix
  multiply; the weight gradient ``dW_hh`` is then ONE matrix multiply over all
  characters (``dgates^T @ h_prev``) instead of one per step, and ``dW_ih`` is a row
  scatter-add (the transpose of the lookup).
* **The backward's temporaries reuse one block of memory** per thread (``_ScratchMemory``):
  freed and allocated afresh every batch, glibc hands them back to the kernel and
  every batch page-faults them in again, a share of the LSTM's training time worth keeping.
* **Inference keeps nothing**: without a backward each step reuses ``(B, G*H)``
  buffers that stay in cache.
* **One sigmoid for all four LSTM gates**: the g rows are pre-doubled and
  ``tanh(g) = 2 sigmoid(2g) - 1`` (one call over ``(n, 4H)`` and a fix-up of a quarter
  costs no more than a sigmoid of three quarters and a separate tanh, or one tanh of
  all four with the sigmoids' fix-ups). Every other tanh is
  torch's own: one pass, cheaper than ``2 sigmoid(2x) - 1``'s four.
* **The LSTM step's gate math in one C++ pass** (native.py, csrc/lstm_step.cpp), when a
  C++ compiler and ninja can build it on first use; else torch's operators above, the
  same equations (``NAMELAB_KERNEL=auto|cpp|torch`` chooses). A step's ``(n_t, H)``
  tensors (at most 128 x 256 values) are below the size at which torch splits an
  elementwise call across threads, so each of the step's ~6 forward and ~4 backward
  calls ran on one thread; the C++ forward activates the gates and writes ``c``,
  ``tanh(c)`` and ``h`` in one pass, the backward derives every gate's gradient from
  the saved activations in one pass (no whole-batch factor buffers), both over rows
  shared out on torch's own threads. The products stay torch's (``addmm_``/``mm``).

The cells' equations (cells.py) stay the definition of the model; the functions
below restate them in buffer form, each next to its derivative. The three cells' kernels
share one module, longer than the package's others, on purpose: each reads best beside
the others' (the same buffers, plan and scratch memory), as the cells do in cells.py.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .cells import Cell, GRUCell, LSTMCell, RNNCell, cell_class
from .native import lstm_ops


@dataclass(frozen=True)
class Plan:
    """Where each character of a batch lives in the packed buffers.

    Packed row ``offsets[t] + b`` holds step ``t`` of the ``b``-th longest name; step
    ``t`` has ``batch_sizes[t]`` rows (names longer than ``t``). Buffers of states get
    one extra leading row of zeros (the initial state), so the state of packed row
    ``k`` is stored at ``k + 1`` and "the previous state" of step 0 is row 0.
    """

    ids: torch.Tensor  # (N,) packed character ids, N = sum(lengths)
    batch_sizes: list[int]  # n_t, non-increasing
    offsets: list[int]  # first packed row of each step
    sorted_indices: torch.Tensor  # (B,) batch row of the b-th longest name
    unsorted_indices: torch.Tensor  # (B,) rank by length of each batch row
    last_rows: torch.Tensor  # (B,) packed row of each name's last character, batch order
    prev_rows: torch.Tensor  # (N - n_0,) state row (1-based) before each character of steps >= 1

    @property
    def num_tokens(self) -> int:
        return self.ids.shape[0]


def check_batch(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``lengths`` on the CPU as int64, after checking that they fit ``ids (B, T)``."""
    if ids.dim() != 2:
        raise ValueError(f"ids must be (batch, time), got shape {tuple(ids.shape)}")
    if ids.shape[0] == 0:
        raise ValueError("the batch is empty; give at least one name")
    lengths_cpu = lengths.detach().to("cpu", torch.int64)
    if lengths_cpu.shape != (ids.shape[0],):
        raise ValueError(f"lengths must have one entry per name ({ids.shape[0]}), got shape {tuple(lengths.shape)}")
    shortest, longest = int(lengths_cpu.numpy().min()), int(lengths_cpu.numpy().max())
    if shortest < 1 or longest > ids.shape[1]:
        raise ValueError(
            f"every length must be between 1 and the padded width {ids.shape[1]}, got {shortest}..{longest}; "
            "encode names with namelab.data.corpus.encode_batch"
        )
    return lengths_cpu


def pack(ids: torch.Tensor, lengths: torch.Tensor) -> Plan:
    """The packing plan of a right-padded batch ``ids (B, T)`` with ``lengths (B,)``.

    ``pack_padded_sequence``'s layout (time-major, longest name first; here ties keep
    their batch order). It runs every batch, so the index arithmetic is done in numpy,
    whose calls on arrays this small cost a fraction of torch's.
    """
    lengths_np = check_batch(ids, lengths).numpy()
    batch = len(lengths_np)
    order = np.argsort(-lengths_np, kind="stable")  # the b-th longest name's batch row
    sorted_lengths = lengths_np[order]
    columns = np.arange(batch)
    active = np.arange(sorted_lengths[0])[:, None] < sorted_lengths  # (T, B): b-th longest has step t
    sizes = active.sum(1)  # (T,)
    offsets = np.cumsum(sizes) - sizes
    position = offsets[:, None] + columns  # (T, B): packed row of step t of the b-th longest
    last_rows, unsorted = np.empty_like(order), np.empty_like(order)
    last_rows[order] = offsets[sorted_lengths - 1] + columns
    unsorted[order] = columns
    prev_rows = 1 + position[:-1][active[1:]]  # step t >= 1 continues state row 1 + position[t - 1, b]
    device = ids.device

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(device)

    sorted_indices = tensor(order)
    packed_ids = ids.index_select(0, sorted_indices)[:, : len(sizes)].t()[torch.from_numpy(active).to(device)]
    return Plan(
        packed_ids,
        sizes.tolist(),
        offsets.tolist(),
        sorted_indices,
        tensor(unsorted),
        tensor(last_rows),
        tensor(prev_rows),
    )


def _state_buffer(plan: Plan, hidden_size: int, like: torch.Tensor) -> torch.Tensor:
    buffer = like.new_empty(plan.num_tokens + 1, hidden_size)
    buffer[0].zero_()
    return buffer


class _ScratchMemory(threading.local):
    """One flat CPU tensor per dtype and thread, reused by every backward call.

    The backward's temporaries (the gates' gradients and the gathers) are as large as
    the forward's kept buffers. Allocated afresh every batch, glibc trims the freed
    memory back to the kernel and the next batch page-faults it in again, which took
    about a tenth of an LSTM training batch. So they live here instead, for as long as
    the thread does. Nothing handed back to autograd is a view of this memory, so
    reusing it on the next call is safe; per thread, so two threads never share it.
    A backward takes what it needs in one call (each call starts again at the block's
    beginning), and a backward never runs inside another.
    """

    limit_bytes = 64 * 2**20  # larger requests get fresh memory: a huge batch does not stay resident

    def __init__(self) -> None:
        self.blocks: dict[torch.dtype, torch.Tensor] = {}

    def take(self, like: torch.Tensor, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
        """Uninitialized contiguous tensors of these shapes, in ``like``'s dtype and device."""
        # Each view starts on a 64-byte boundary (16 float32), so vector loads stay aligned.
        sizes = [-(-math.prod(shape) // 16) * 16 for shape in shapes]
        total = sum(sizes)
        if like.device.type != "cpu" or total * like.element_size() > self.limit_bytes:
            return [like.new_empty(shape) for shape in shapes]
        block = self.blocks.get(like.dtype)
        if block is None or block.numel() < total:
            block = like.new_empty(total + total // 4)  # headroom: the next batch may be longer
            self.blocks[like.dtype] = block
        views, offset = [], 0
        for shape, size in zip(shapes, sizes):
            views.append(block[offset : offset + math.prod(shape)].view(shape))
            offset += size
        return views


_SCRATCH = _ScratchMemory()


# Each cell's forward below runs its equations over the whole batch in one of two
# layouts. keep=True (training): packed buffers with one row per character, kept for
# the backward; state buffers have a leading zero row (see Plan). keep=False
# (inference): nothing is kept, so every step works in the first n_t rows of (B, G*H)
# buffers that stay in cache, and the state is updated in place. Either way it returns
# each name's last state in batch order, and what the backward needs.
#
# Every view a step uses is made before the loop (one ``split`` per buffer), and
# constants are 0-dim tensors: on this scale a Python-level slice or a Python number
# costs as much as the arithmetic.


def _step_views(buffer: torch.Tensor, plan: Plan, keep: bool) -> list[torch.Tensor]:
    """The rows of each step: packed (keep) or the first n_t rows of a rolling buffer."""
    if keep:
        return list(buffer.split_with_sizes(plan.batch_sizes))  # the method: no Python wrapper
    return [buffer[:n] for n in plan.batch_sizes]


def _previous(states: list[torch.Tensor], keep: bool) -> list[torch.Tensor | None]:
    """The state each step starts from: None (zeros) at step 0, then the step before's."""
    if keep:
        return [None] + [states[t - 1][: len(states[t])] for t in range(1, len(states))]
    return [None] + states[1:]  # updated in place: a step's rows hold its previous state


@dataclass(frozen=True)
class _Constants:
    """0-dim tensors for the constants the steps use, in the weights' dtype and device."""

    one: torch.Tensor
    two: torch.Tensor

    @classmethod
    def like(cls, tensor: torch.Tensor) -> "_Constants":
        return cls(tensor.new_full((), 1.0), tensor.new_full((), 2.0))


def _tanh(x: torch.Tensor, out: torch.Tensor, k: _Constants) -> torch.Tensor:
    """``tanh(x)`` into ``out``: one pass, where ``2 sigmoid(2x) - 1`` takes four (docs/benchmarks.md)."""
    return torch.tanh(x, out=out)


# -- RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) -------------------------------


def _rnn_forward(plan: Plan, w_ih, w_hh, b_ih, b_hh, keep: bool):
    table = (w_ih.t() + (b_ih + b_hh)).contiguous()  # (V, H): the input side, both biases
    H, w_t, k = w_hh.shape[1], w_hh.t(), _Constants.like(w_hh)
    if keep:
        pre, hs = table.index_select(0, plan.ids), _state_buffer(plan, H, w_hh)  # (N, H), (1 + N, H)
    else:
        pre, hs = w_hh.new_empty(plan.batch_sizes[0], H), w_hh.new_empty(plan.batch_sizes[0], H)
    pre_t, h_t = _step_views(pre, plan, keep), _step_views(hs[1:] if keep else hs, plan, keep)
    ids_t = None if keep else plan.ids.split_with_sizes(plan.batch_sizes)
    for t, h_prev in enumerate(_previous(h_t, keep)):
        if not keep:
            torch.index_select(table, 0, ids_t[t], out=pre_t[t])
        if h_prev is not None:
            pre_t[t].addmm_(h_prev, w_t)
        _tanh(pre_t[t], h_t[t], k)
    if keep:
        return hs.index_select(0, 1 + plan.last_rows), (hs,)
    return hs.index_select(0, plan.unsorted_indices), ()


def _rnn_backward(plan: Plan, dh: torch.Tensor, w_hh, hs, step_grads=None):
    k = _Constants.like(hs)
    # tanh' = 1 - h^2 for every character at once, outside the loop; each step then
    # turns its rows into the gradient of the pre-activations, in place.
    dpre, spare = _SCRATCH.take(hs, (plan.num_tokens, hs.shape[1]), (plan.num_tokens, hs.shape[1]))
    torch.addcmul(k.one, hs[1:], hs[1:], value=-1, out=dpre)  # (N, H)
    split = plan.batch_sizes
    dpre_t = dpre.split_with_sizes(split)
    for t in reversed(range(len(split))):
        dh_t = dh[: split[t]]
        if step_grads is not None:
            dh_t.add_(step_grads[t])
        dpre_t[t].mul_(dh_t)
        if t:
            torch.mm(dpre_t[t], w_hh, out=dh_t)  # dh_{t-1}
    return dpre, dpre, hs, spare


# -- LSTM: gates i, f, g, o = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh ------------------------
#          c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)


def _lstm_forward(plan: Plan, w_ih, w_hh, b_ih, b_hh, keep: bool):
    H, k = w_hh.shape[1], _Constants.like(w_hh)
    # Doubling the g rows lets one sigmoid serve all four gates: tanh(g) = 2 sigmoid(2g) - 1.
    scale = w_hh.new_ones(4 * H, 1)
    scale[2 * H : 3 * H] = 2
    table = ((w_ih.t() + (b_ih + b_hh)) * scale.t()).contiguous()  # (V, 4H)
    w_t = (w_hh * scale).t()  # (H, 4H)
    rows = plan.num_tokens if keep else plan.batch_sizes[0]
    if keep:
        gates = table.index_select(0, plan.ids)  # (N, 4H), activated in place
        hs, cs = _state_buffer(plan, H, w_hh), _state_buffer(plan, H, w_hh)  # (1 + N, H)
        h_t, c_t = _step_views(hs[1:], plan, keep), _step_views(cs[1:], plan, keep)
    else:
        gates, hs, cs = w_hh.new_empty(rows, 4 * H), w_hh.new_empty(rows, H), w_hh.new_empty(rows, H)
        h_t, c_t = _step_views(hs, plan, keep), _step_views(cs, plan, keep)
    tanh_cs = w_hh.new_empty(rows, H)
    g_t, tc_t = _step_views(gates, plan, keep), _step_views(tanh_cs, plan, keep)
    i_t, f_t, gg_t, o_t = (_step_views(gate, plan, keep) for gate in gates.unflatten(1, (4, H)).unbind(1))
    ids_t = None if keep else plan.ids.split_with_sizes(plan.batch_sizes)
    native = lstm_ops(w_hh)
    for t, (h_prev, c_prev) in enumerate(zip(_previous(h_t, keep), _previous(c_t, keep))):
        g, i, f, g_, o, c = g_t[t], i_t[t], f_t[t], gg_t[t], o_t[t], c_t[t]
        if not keep:
            torch.index_select(table, 0, ids_t[t], out=g)
        if h_prev is not None:
            g.addmm_(h_prev, w_t)
        if native is not None:  # the same gate math in one parallel pass (native.py)
            native.forward_step(g, c_prev, c, tc_t[t], h_t[t])
            continue
        g.sigmoid_()  # i, f, o; and sigmoid(2g), which the next line turns into tanh(g)
        g_.mul_(k.two).sub_(k.one)
        if c_prev is None:
            torch.mul(i, g_, out=c)
        else:
            torch.mul(f, c_prev, out=c).addcmul_(i, g_)
        torch.mul(o, _tanh(c, tc_t[t], k), out=h_t[t])
    if keep:
        return hs.index_select(0, 1 + plan.last_rows), (gates, hs, cs, tanh_cs)
    return hs.index_select(0, plan.unsorted_indices), ()


def _lstm_backward(plan: Plan, dh: torch.Tensor, w_hh, gates, hs, cs, tanh_cs, step_grads=None):
    native = lstm_ops(w_hh)
    if native is not None:
        return _lstm_backward_native(native, plan, dh, w_hh, gates, hs, cs, tanh_cs, step_grads)
    H, k = w_hh.shape[1], _Constants.like(w_hh)
    i, f, g, o = gates.unflatten(1, (4, H)).unbind(1)
    # dL/d(pre-activation) = factor * dc_t (i, f, g) or * dh_t (o). No factor needs the
    # recurrence, so all are computed at once here, outside the loop, and each step
    # turns its rows into the gates' gradients in place (one buffer, not two: fresh
    # buffers cost page faults and cache misses on this scale). The saved activations
    # stay as they are, so a graph kept with retain_graph can be run backward again.
    N = plan.num_tokens
    dgates, dh_to_dc, c_prev = _SCRATCH.take(gates, (N, 4 * H), (N, H), (N, H))
    torch.addcmul(gates, gates, gates, value=-1, out=dgates)  # (N, 4H): sigmoid' = s - s^2 (i, f, o)
    factor_i, factor_f, factor_g, factor_o = dgates.unflatten(1, (4, H)).unbind(1)
    factor_i.mul_(g)  # i: g * sigmoid'
    factor_f.mul_(torch.index_select(cs, 0, _prev_state_rows(plan), out=c_prev))  # f: c_{t-1} * sigmoid', 0 at step 0
    torch.addcmul(k.one, g, g, value=-1, out=factor_g).mul_(i)  # g: i * tanh'
    factor_o.mul_(tanh_cs)  # o: tanh(c_t) * sigmoid'
    torch.addcmul(k.one, tanh_cs, tanh_cs, value=-1, out=dh_to_dc).mul_(o)  # (N, H): o * tanh'(c_t)
    dc = torch.zeros_like(dh)
    split = plan.batch_sizes
    dg_t, dg_ifg_t = dgates.split_with_sizes(split), dgates[:, : 3 * H].unflatten(1, (3, H)).split_with_sizes(split)
    dg_o_t, dh_to_dc_t = dgates[:, 3 * H :].split_with_sizes(split), dh_to_dc.split_with_sizes(split)
    f_t = f.split_with_sizes(split)
    for t in reversed(range(len(split))):
        dh_t, dc_t = dh[: split[t]], dc[: split[t]]
        if step_grads is not None:
            dh_t.add_(step_grads[t])
        dc_t.addcmul_(dh_t, dh_to_dc_t[t])  # dc_t += dh_t * o * tanh'(c_t)
        dg_ifg_t[t].mul_(dc_t.unsqueeze(1))
        dg_o_t[t].mul_(dh_t)
        if t:
            dc_t.mul_(f_t[t])  # dc_{t-1}
            torch.mm(dg_t[t], w_hh, out=dh_t)  # dh_{t-1}
    return dgates, dgates, hs, c_prev  # c_prev's memory is free again


def _lstm_backward_native(native, plan: Plan, dh: torch.Tensor, w_hh, gates, hs, cs, tanh_cs, step_grads=None):
    """``_lstm_backward`` with each step's gate math in one C++ pass (native.py).

    The derivative factors are computed inside the step from the saved activations
    (one read of them, no whole-batch passes), so nothing but the gates' gradients and
    the previous states for ``dW_hh`` needs scratch memory.
    """
    H, N, split = w_hh.shape[1], plan.num_tokens, plan.batch_sizes
    dgates, spare = _SCRATCH.take(gates, (N, 4 * H), (N, H))
    dc = torch.zeros_like(dh)
    dg_t, g_t = dgates.split_with_sizes(split), gates.split_with_sizes(split)
    tc_t, c_t = tanh_cs.split_with_sizes(split), cs[1:].split_with_sizes(split)
    for t in reversed(range(len(split))):
        n = split[t]
        dh_t, c_prev = dh[:n], c_t[t - 1][:n] if t else None  # c_{-1} = 0
        step_grad = None if step_grads is None else step_grads[t]
        native.backward_step(g_t[t], tc_t[t], c_prev, dh_t, step_grad, dc[:n], dg_t[t])
        if t:
            torch.mm(dg_t[t], w_hh, out=dh_t)  # dh_{t-1}
    return dgates, dgates, hs, spare


# -- GRU: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r * h_n) ----------
#         h_t = (1 - z) n + z h_{t-1}, with x_* = W_i* x_t + b_i*, h_* = W_h* h_{t-1} + b_h*


def _gru_forward(plan: Plan, w_ih, w_hh, b_ih, b_hh, keep: bool):
    table = (w_ih.t() + b_ih).contiguous()  # (V, 3H); b_hh_n sits inside r * (...), so biases stay apart
    H, w_t, k = w_hh.shape[1], w_hh.t(), _Constants.like(w_hh)
    rows = plan.num_tokens if keep else plan.batch_sizes[0]
    gates = table.index_select(0, plan.ids) if keep else w_hh.new_empty(rows, 3 * H)  # r, z, n after the loop
    hh = w_hh.new_empty(rows, 3 * H)  # W_hh h_{t-1} + b_hh
    hs = _state_buffer(plan, H, w_hh) if keep else w_hh.new_empty(rows, H)
    h_t = _step_views(hs[1:] if keep else hs, plan, keep)
    g_t, hh_t = _step_views(gates, plan, keep), _step_views(hh, plan, keep)
    rz_t, n_t = _step_views(gates[:, : 2 * H], plan, keep), _step_views(gates[:, 2 * H :], plan, keep)
    r_t, z_t = _step_views(gates[:, :H], plan, keep), _step_views(gates[:, H : 2 * H], plan, keep)
    hh_rz_t, hh_n_t = _step_views(hh[:, : 2 * H], plan, keep), _step_views(hh[:, 2 * H :], plan, keep)
    ids_t = None if keep else plan.ids.split_with_sizes(plan.batch_sizes)
    for t, h_prev in enumerate(_previous(h_t, keep)):
        n, z = n_t[t], z_t[t]
        if not keep:
            torch.index_select(table, 0, ids_t[t], out=g_t[t])
        if h_prev is None:  # h_{-1} = 0: only the bias is left of W_hh h + b_hh
            hh_t[t].copy_(b_hh.expand_as(hh_t[t]))
        else:
            torch.addmm(b_hh, h_prev, w_t, out=hh_t[t])
        rz_t[t].add_(hh_rz_t[t]).sigmoid_()  # r, z
        _tanh(n.addcmul_(r_t[t], hh_n_t[t]), n, k)
        if h_prev is None:
            torch.addcmul(n, z, n, value=-1, out=h_t[t])  # (1 - z) n
        else:
            torch.lerp(n, h_prev, z, out=h_t[t])  # n + z (h_{t-1} - n) = (1 - z) n + z h_{t-1}
    if keep:
        return hs.index_select(0, 1 + plan.last_rows), (gates, hh, hs)
    return hs.index_select(0, plan.unsorted_indices), ()


def _gru_backward(plan: Plan, dh: torch.Tensor, w_hh, gates, hh, hs, step_grads=None):
    H, k = w_hh.shape[1], _Constants.like(w_hh)
    r, z, n = gates.unflatten(1, (3, H)).unbind(1)
    N = plan.num_tokens
    dx, dhh, h_prev = _SCRATCH.take(gates, (N, 3 * H), (N, 3 * H), (N, H))
    torch.index_select(hs, 0, _prev_state_rows(plan), out=h_prev)  # (N, H), zeros at step 0
    # d(pre-activations) = dh_t * factor, for the input side (dx) and the hidden side
    # (dhh); the factors need no recurrence, so they are computed here for every
    # character, and each step turns its rows into gradients in place.
    torch.addcmul(gates, gates, gates, value=-1, out=dx)  # (N, 3H): sigmoid' = s - s^2 (r, z)
    to_r, to_z, to_n = dx.unflatten(1, (3, H)).unbind(1)
    torch.addcmul(k.one, n, n, value=-1, out=to_n).mul_(torch.sub(k.one, z))  # n: (1 - z) tanh'
    to_r.mul_(hh[:, 2 * H :]).mul_(to_n)  # r: dn_pre * h_n * sigmoid'
    to_z.mul_(h_prev.sub_(n))  # z: (h_{t-1} - n) * sigmoid'
    dhh.copy_(dx)
    dhh[:, 2 * H :].mul_(r)  # the hidden side of n is scaled by r
    split = plan.batch_sizes
    dx3_t = dx.unflatten(1, (3, H)).split_with_sizes(split)
    dhh3_t = dhh.unflatten(1, (3, H)).split_with_sizes(split)
    dhh_t, z_t = dhh.split_with_sizes(split), z.split_with_sizes(split)
    for t in reversed(range(len(split))):
        dh_t = dh[: split[t]]
        if step_grads is not None:
            dh_t.add_(step_grads[t])
        dx3_t[t].mul_(dh_t.unsqueeze(1))
        dhh3_t[t].mul_(dh_t.unsqueeze(1))
        if t:
            dh_t.mul_(z_t[t]).addmm_(dhh_t[t], w_hh)  # dh_{t-1} = dh_t z + dhh W_hh
    return dx, dhh, hs, h_prev  # h_prev's memory is free again


# Each cell's forward and backward loops, found from the cell's class.
_KERNELS = {
    RNNCell: (_rnn_forward, _rnn_backward),
    LSTMCell: (_lstm_forward, _lstm_backward),
    GRUCell: (_gru_forward, _gru_backward),
}


def _kernels(cell: type[Cell]):
    if cell not in _KERNELS:
        raise TypeError(f"no fast engine for {cell.__name__}; it runs {', '.join(c.__name__ for c in _KERNELS)}")
    return _KERNELS[cell]


class _CellFunction(torch.autograd.Function):
    """A cell's whole time loop as one node of the autograd graph."""

    @staticmethod
    def forward(ctx, cell: type[Cell], plan: Plan, w_ih, w_hh, b_ih, b_hh):
        last, kept = _kernels(cell)[0](plan, w_ih, w_hh, b_ih, b_hh, keep=True)
        ctx.cell, ctx.plan, ctx.vocab_size = cell, plan, w_ih.shape[1]
        ctx.save_for_backward(w_hh, *kept)
        return last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_last):
        plan: Plan = ctx.plan
        w_hh, *kept = ctx.saved_tensors
        dh = grad_last.index_select(0, plan.sorted_indices)  # (B, H), longest name first
        # Name b's gradient enters at its last step: the loop touches only rows [:n_t], so
        # row b keeps grad_last until the step where it becomes active.
        dx, dhh, hs, spare = _kernels(ctx.cell)[1](plan, dh, w_hh, *kept)
        return (None, None, *_weight_grads(plan, dx, dhh, hs, spare, ctx.vocab_size))


class _StatesFunction(torch.autograd.Function):
    """A cell's whole time loop returning every step's state, packed ``(N, H)``.

    The same kernels as :class:`_CellFunction`; the backward loop adds each step's
    incoming gradient to ``dh`` as it reaches that step, so pooling over the steps (or
    reading any of them) costs one add per step.
    """

    @staticmethod
    def forward(ctx, cell: type[Cell], plan: Plan, w_ih, w_hh, b_ih, b_hh):
        _, kept = _kernels(cell)[0](plan, w_ih, w_hh, b_ih, b_hh, keep=True)
        ctx.cell, ctx.plan, ctx.vocab_size = cell, plan, w_ih.shape[1]
        ctx.save_for_backward(w_hh, *kept)
        return _STATE_BUFFER[cell](kept)[1:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        plan: Plan = ctx.plan
        w_hh, *kept = ctx.saved_tensors
        dh = grad_states.new_zeros(plan.batch_sizes[0], grad_states.shape[1])
        step_grads = grad_states.contiguous().split_with_sizes(plan.batch_sizes)
        dx, dhh, hs, spare = _kernels(ctx.cell)[1](plan, dh, w_hh, *kept, step_grads=step_grads)
        return (None, None, *_weight_grads(plan, dx, dhh, hs, spare, ctx.vocab_size))


# Where each kernel's forward keeps its (1 + N, H) hidden-state buffer.
_STATE_BUFFER = {
    RNNCell: lambda kept: kept[0],  # (hs,)
    LSTMCell: lambda kept: kept[1],  # (gates, hs, cs, tanh_cs)
    GRUCell: lambda kept: kept[2],  # (gates, hh, hs)
}


def padded_rows(plan: Plan) -> torch.Tensor:
    """``(B, T)``: the packed row of each name's step ``t`` in batch order, ``N`` past its end."""
    sizes = np.asarray(plan.batch_sizes)
    columns = np.arange(sizes[0])
    position = np.asarray(plan.offsets)[:, None] + columns  # (T, B) in length order
    position[columns >= sizes[:, None]] = plan.num_tokens
    rows = torch.from_numpy(np.ascontiguousarray(position.T)).to(plan.ids.device)
    return rows.index_select(0, plan.unsorted_indices)


def _prev_state_rows(plan: Plan) -> torch.Tensor:
    """State-buffer row before every packed character (row 0, the zero state, at step 0)."""
    first = torch.zeros(plan.batch_sizes[0], dtype=torch.int64, device=plan.prev_rows.device)
    return torch.cat([first, plan.prev_rows])


def _weight_grads(
    plan: Plan, dx: torch.Tensor, dhh: torch.Tensor, states: torch.Tensor, spare: torch.Tensor, vocab_size: int
):
    """Gradients of ``w_ih, w_hh, b_ih, b_hh`` from the packed pre-activation gradients.

    ``dx`` is the gradient of the input side ``W_ih x_t + b_ih`` and ``dhh`` of the
    hidden side ``W_hh h_{t-1} + b_hh`` (the same tensor for RNN and LSTM); ``spare``
    is scratch memory of at least ``(N, H)`` for the previous states. Every gradient
    returned is fresh memory (none is a view of the scratch).
    """
    n0 = plan.batch_sizes[0]
    prev = torch.index_select(states, 0, plan.prev_rows, out=spare[: len(plan.prev_rows)])
    # One matrix multiply over every character with a nonzero previous state.
    grad_w_hh = dhh[n0:].t() @ prev  # (G*H, H)
    # The lookup's transpose: scatter-add each character's gradient into its row.
    grad_w_ih_t = dx.new_zeros(vocab_size, dx.shape[1])  # (V, G*H)
    grad_w_ih_t.index_add_(0, plan.ids, dx)
    grad_b_ih = grad_w_ih_t.sum(0)  # every character's gradient sits in exactly one row: V rows, not N
    grad_b_hh = grad_b_ih if dhh is dx else dhh.sum(0)
    return grad_w_ih_t.t(), grad_w_hh, grad_b_ih, grad_b_hh


def run(
    cell: str,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """Run cell ``cell`` ("rnn", "lstm" or "gru") with these weights; ``(B, H)`` last states.

    The weights are laid out as torch's recurrent layers lay them out (``weight_ih_l0``
    and so on); differentiable with respect to all four.
    """
    return _run(cell_class(cell), ids, lengths, w_ih, w_hh, b_ih, b_hh)


def _run(cell: type[Cell], ids, lengths, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    weights = (w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
        return _CellFunction.apply(cell, pack(ids, lengths), *weights)
    with torch.no_grad():
        return _kernels(cell)[0](pack(ids, lengths), *weights, keep=False)[0]


def run_cell(
    cell: Cell, ids: torch.Tensor, lengths: torch.Tensor, w_ih: torch.Tensor | None = None
) -> torch.Tensor:
    """``run`` with the weights of a cells.py cell: what stepping ``cell.step`` computes.

    ``w_ih`` replaces ``cell.x2h.weight`` (``(G*H, V)``): an embedding folded into it.
    """
    _kernels(type(cell))  # before reading weights that an unsupported module may lack
    w_ih = cell.x2h.weight if w_ih is None else w_ih
    return _run(type(cell), ids, lengths, w_ih, cell.h2h.weight, cell.x2h.bias, cell.h2h.bias)


def run_cell_states(
    cell: Cell, ids: torch.Tensor, lengths: torch.Tensor, w_ih: torch.Tensor | None = None
) -> tuple[torch.Tensor, Plan]:
    """Every step's hidden state, packed ``(N, H)`` (see :class:`Plan`), and the plan.

    What stepping ``cell.step`` computes at every real step; ``padded_rows(plan)`` says
    where each name's steps are. Differentiable with respect to the cell's weights.
    ``w_ih`` replaces ``cell.x2h.weight`` (``(G*H, V)``): an embedding folded into it.
    """
    kernel = type(cell)
    _kernels(kernel)
    plan = pack(ids, lengths)
    weights = (cell.x2h.weight if w_ih is None else w_ih, cell.h2h.weight, cell.x2h.bias, cell.h2h.bias)
    return _states(kernel, plan, *weights), plan


def _states(kernel: type[Cell], plan: Plan, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    weights = (w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
        return _StatesFunction.apply(kernel, plan, *weights)
    with torch.no_grad():
        return _STATE_BUFFER[kernel](_kernels(kernel)[0](plan, *weights, keep=True)[1])[1:]
