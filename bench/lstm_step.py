"""The LSTM step's two kernels side by side: torch's operators against the C++ pass (native.py).

    python bench/lstm_step.py                      # batch 128, hidden 256, 1 and 2 threads
    python bench/lstm_step.py --threads 2 --repeats 51

Two figures per thread count, each the median of ``--repeats`` interleaved runs
(torch, C++, torch, ...) in one process, wall time:

* ``gate math``: one forward step's elementwise work alone on ``(batch, 4H)`` gates
  (what the C++ ``lstm_forward_step`` replaces: a sigmoid, the g fix-up, c, tanh(c), h);
* ``fwd+bwd per step``: engine.py's whole LSTM forward and backward (products
  included) over ``batch`` names of ``--length`` characters, divided by the length;

and one figure for a whole training batch (``CharClassifier`` forward, cross-entropy,
backward, AdamW step; batches of 4-5, 6-7, 8-9 and 10-11 characters, as length-sorted
batches are; dropout 0.5, 57 letters, 18 classes)
for the hand engine on each kernel and for torch's fused ``nn.LSTM``, interleaved
likewise: the ratios hand/fused are what bench/speed.py's hand/fused measures, with
many short repeats, whose medians a busy neighbour disturbs less than a few epochs.

Nothing here passes or fails on time; on a shared machine quote only ratios, and say so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from namelab.core import engine, native  # noqa: E402


def torch_gate_math(g: torch.Tensor, c_prev: torch.Tensor, c, tanh_c, h) -> None:
    """engine.py's torch path for one step after the product (the same calls, in order)."""
    H = c.shape[1]
    i, f, g_, o = g.unflatten(1, (4, H)).unbind(1)
    one, two = g.new_full((), 1.0), g.new_full((), 2.0)
    g.sigmoid_()
    g_.mul_(two).sub_(one)
    torch.mul(f, c_prev, out=c).addcmul_(i, g_)
    torch.mul(o, torch.tanh(c, out=tanh_c), out=h)


def time_once(fn) -> float:
    """Seconds ``fn()`` took; a variant that prepares untimed inputs times itself and returns its seconds."""
    started = time.perf_counter()
    seconds = fn()
    return seconds if seconds is not None else time.perf_counter() - started


def interleaved(variants: dict, repeats: int) -> dict[str, float]:
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(time_once(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def gate_math_variants(batch: int, hidden: int, inner: int):
    ops = native.lstm_ops(torch.empty(0))
    gen = torch.Generator().manual_seed(0)
    pre = torch.randn(batch, 4 * hidden, generator=gen) * 2
    c_prev = torch.randn(batch, hidden, generator=gen)
    c, tanh_c, h = torch.empty_like(c_prev), torch.empty_like(c_prev), torch.empty_like(c_prev)
    # The gate math overwrites its gates: each step gets a fresh copy, made before the clock starts.
    # (Timing the copies and subtracting their median could give a negative time when the
    # gate math is as cheap as the noise.)
    gates = [pre.clone() for _ in range(inner)]

    def timed(step) -> Callable[[], float]:
        def run() -> float:
            for g in gates:
                g.copy_(pre)
            started = time.perf_counter()
            for g in gates:
                step(g)
            return time.perf_counter() - started

        return run

    return {
        "torch": timed(lambda g: torch_gate_math(g, c_prev, c, tanh_c, h)),
        "cpp": timed(lambda g: ops.forward_step(g, c_prev, c, tanh_c, h)),
    }


def engine_variants(batch: int, hidden: int, length: int, vocab: int = 60):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab, (batch, length), generator=gen)
    lengths = torch.full((batch,), length)
    weights = [
        (torch.randn(4 * hidden, vocab, generator=gen) * 0.1).requires_grad_(),
        (torch.randn(4 * hidden, hidden, generator=gen) * 0.1).requires_grad_(),
        torch.zeros(4 * hidden).requires_grad_(),
        torch.zeros(4 * hidden).requires_grad_(),
    ]

    def with_kernel(kernel: str):
        def run_once():
            os.environ[native.ENV_VAR] = kernel
            try:
                engine.run("lstm", ids, lengths, *weights).sum().backward()
            finally:
                os.environ.pop(native.ENV_VAR)

        return run_once

    return {"torch": with_kernel("torch"), "cpp": with_kernel("cpp")}


TRAIN_BATCHES = 4  # training batches per timed run


def training_variants(batch: int, hidden: int, vocab: int = 57, classes: int = 18):
    from namelab.core.model import CharClassifier, ModelConfig

    gen = torch.Generator().manual_seed(2)
    data = []
    for shortest in range(4, 4 + 2 * TRAIN_BATCHES, 2):  # length-sorted batches, as data.batches makes them
        lengths = torch.randint(shortest, shortest + 2, (batch,), generator=gen)
        ids = torch.randint(1, vocab, (batch, int(lengths.max())), generator=gen)
        data.append((ids, lengths, torch.randint(0, classes, (batch,), generator=gen)))
    torch.manual_seed(0)
    hand = CharClassifier(ModelConfig(vocab, classes, "lstm", hidden, "hand", dropout=0.5))
    fused = hand.with_engine("fused")

    def trainer(model, kernel: str):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

        def run_once():
            os.environ[native.ENV_VAR] = kernel
            try:
                for ids, lengths, targets in data:
                    loss = torch.nn.functional.cross_entropy(model(ids, lengths), targets)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            finally:
                os.environ.pop(native.ENV_VAR)

        return run_once

    return {"torch": trainer(hand, "torch"), "cpp": trainer(hand, "cpp"), "fused": trainer(fused, "torch")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--length", type=int, default=8, help="characters per name in the fwd+bwd figure")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--inner", type=int, default=20, help="gate-math steps per timed run")
    args = parser.parse_args(argv)
    os.environ[native.ENV_VAR] = "cpp"  # build (or load) it now, and fail here if it cannot be built
    native.lstm_ops(torch.empty(0))
    os.environ.pop(native.ENV_VAR)
    print(f"batch {args.batch_size}, hidden {args.hidden_size}; medians of {args.repeats} interleaved runs, µs")
    training = {}
    print("threads | gate math torch | gate math C++ | ratio | fwd+bwd/step torch | fwd+bwd/step C++ | ratio")
    for threads in [int(n) for n in args.threads.split(",")]:
        torch.set_num_threads(threads)
        gm = gate_math_variants(args.batch_size, args.hidden_size, args.inner)
        interleaved(gm, 3)  # warm-up
        gate = interleaved(gm, args.repeats)
        gate_torch, gate_cpp = (gate[k] / args.inner * 1e6 for k in ("torch", "cpp"))
        ev = engine_variants(args.batch_size, args.hidden_size, args.length)
        interleaved(ev, 3)
        step = interleaved(ev, args.repeats)
        step_torch, step_cpp = (step[k] / args.length * 1e6 for k in ("torch", "cpp"))
        print(
            f"{threads} | {gate_torch:.1f} | {gate_cpp:.1f} | {gate_torch / gate_cpp:.2f}x | "
            f"{step_torch:.1f} | {step_cpp:.1f} | {step_torch / step_cpp:.2f}x"
        )
        tv = training_variants(args.batch_size, args.hidden_size)
        interleaved(tv, 3)
        training[threads] = interleaved(tv, args.repeats)
    print("threads | training batch, ms: hand (torch) | hand (C++) | fused | hand/fused: torch | C++")
    for threads, t in training.items():
        n = TRAIN_BATCHES
        print(
            f"{threads} | {t['torch'] / n * 1e3:.2f} | {t['cpp'] / n * 1e3:.2f} | {t['fused'] / n * 1e3:.2f} | "
            f"{t['fused'] / t['torch']:.2f}x | {t['fused'] / t['cpp']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
