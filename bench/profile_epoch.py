"""Where a training epoch spends its time, by phase and by operator (torch.profiler).

    NAMELAB_DATA=/work/shared/data/names python bench/profile_epoch.py                  # lstm, 1 and 2 threads
    python bench/profile_epoch.py --cells lstm,gru --threads 1 --batches 40 --repeats 5

Runs the steps of ``namelab.train.loop``'s epoch (batching, forward, cross-entropy with the
class weights, backward, gradient clipping, fused AdamW) on ``--batches`` batches of the
real train split, for the hand engine and torch's fused layer one after the other, under
``torch.profiler``; ``--repeats`` times, interleaved. Each operator's *self* time is
filed under the phase it ran in:

* ``recurrent forward`` / ``recurrent backward``: inside the engine's autograd Function
  (hand) or ``aten::lstm``/``gru``/``rnn`` and the autograd nodes of its step ops (fused),
* ``rest of forward`` (packing, one-hot, output layer, dropout), ``rest of backward``,
  ``loss``, ``clip``, ``adamw``;

and within a phase under ``matmul`` (addmm, mm, bmm, matmul, linear), ``fused kernel``
(oneDNN's whole-sequence RNN layer, which torch's fused layers run on this CPU), ``elementwise``
(the gate math: sigmoid, tanh, mul, add, ...), ``index/copy`` (index_select, index_add,
cat, copy, empty, zero) or ``python`` (the phase's time that no operator accounts for:
the interpreter, numpy, dispatch). It prints each phase's and each class's share of the
profiled time (median over the repeats) and the top operators, as Markdown tables.

The profiler adds a few microseconds to every operator call, which inflates the many
small per-step calls; shares measured in the same run are what to compare, not times.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from namelab.core.model import CharClassifier, ModelConfig
from namelab.data.corpus import Corpus, batches
from namelab.data.download import resolve_data_dir
from namelab.train.loop import class_weights

PHASES = ("forward", "loss", "backward", "clip", "adamw")
MATMUL = {"aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm", "aten::addmm_"}
INDEX = {
    "aten::index_select", "aten::index_add_", "aten::cat", "aten::copy_", "aten::empty", "aten::zero_",
    "aten::zeros", "aten::zeros_like", "aten::empty_like", "aten::clone", "aten::index", "aten::gather",
    "aten::scatter_add_", "aten::new_empty", "aten::new_zeros", "aten::contiguous", "aten::embedding",
    "aten::one_hot", "aten::_pack_padded_sequence", "aten::_pad_packed_sequence", "aten::sort", "aten::fill_",
    "aten::select", "aten::slice", "aten::split", "aten::unbind", "aten::t", "aten::transpose", "aten::view",
    "aten::as_strided", "aten::expand", "aten::unsqueeze", "aten::reshape", "aten::narrow", "aten::to",
    "aten::_to_copy", "aten::empty_strided", "aten::unflatten", "aten::resize_", "aten::masked_fill",
    "aten::index_put_", "aten::nonzero", "aten::arange", "aten::stack", "aten::unsafe_split", "aten::chunk",
    "aten::unsafe_chunk", "aten::detach", "aten::lift_fresh", "aten::set_", "aten::alias", "aten::_unsafe_view",
    "aten::squeeze", "aten::new_empty_strided", "aten::result_type", "aten::_has_compatible_shallow_copy_type",
}
RECURRENT_FORWARD = ("_CellFunction", "_StatesFunction", "aten::lstm", "aten::gru", "aten::rnn_tanh")


FUSED_KERNELS = {"aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"}  # oneDNN: products and gates in one


def op_class(name: str) -> str:
    if name in FUSED_KERNELS:
        return "fused kernel"
    if name in MATMUL:
        return "matmul"
    if name in INDEX:
        return "index/copy"
    if name.startswith(("aten::", "_foreach", "namelab::")):  # namelab::lstm_*_step: the C++ gate math
        return "elementwise"
    return "python"


def phase_of(event, fused: bool) -> str | None:
    """The phase an operator ran in, from its chain of parents."""
    chain = []
    node = event
    while node is not None:
        chain.append(node.name)
        node = node.cpu_parent
    top = chain[-1]
    if top not in PHASES:
        return None
    names = set(chain[:-1])
    if top == "forward":
        return "recurrent forward" if names & set(RECURRENT_FORWARD) else "rest of forward"
    if top == "backward":
        # Hand: one node for the whole loop. Fused: the step ops' own nodes (their names
        # name the op: MmBackward0, SigmoidBackward0, ...) under the lstm's graph; the
        # output layer's nodes (AddmmBackward0 of the output, the loss's) are counted with
        # them, a small bias toward "recurrent" for the fused engine that the docs state.
        recurrent = any("CellFunctionBackward" in n or "StatesFunctionBackward" in n for n in names)
        if fused:
            recurrent = not any(
                key in n for n in names for key in ("NllLoss", "LogSoftmax", "TBackward", "Dropout", "MulBackward0_out")
            )
        return "recurrent backward" if recurrent else "rest of backward"
    return top


def profile_batches(model, optimizer, data, weights) -> dict:
    """Self time (µs) per (phase, class) and per (phase, op) over ``data``; phase wall times."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for ids, lengths, targets in data:
            with record_function("forward"):
                logits = model(ids, lengths)
            with record_function("loss"):
                loss = F.cross_entropy(logits, targets, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            with record_function("backward"):
                loss.backward()
            with record_function("clip"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            with record_function("adamw"):
                optimizer.step()
    fused = model.config.engine == "fused"
    by_class: dict = defaultdict(float)
    by_op: dict = defaultdict(float)
    wall: dict = defaultdict(float)
    covered: dict = defaultdict(float)
    for event in prof.events():
        if event.name in PHASES and event.cpu_parent is None:
            wall[event.name] += event.cpu_time_total
            continue
        phase = phase_of(event, fused)
        if phase is None:
            continue
        cls = op_class(event.name)
        if cls == "python":  # a range of its own (the Function, an autograd node): its self time is Python
            by_class[(phase, "python")] += event.self_cpu_time_total
        else:
            by_class[(phase, cls)] += event.self_cpu_time_total
            by_op[(phase, event.name)] += event.self_cpu_time_total
        covered[phase.split(" ")[-1] if phase.startswith(("recurrent", "rest")) else phase] += event.self_cpu_time_total
    # What no event accounts for inside a phase (the interpreter between ops, numpy) is Python.
    for top in PHASES:
        gap = wall[top] - covered[top]
        if gap > 0:
            target = {"forward": "rest of forward", "backward": "rest of backward"}.get(top, top)
            by_class[(target, "python")] += gap
    return {"class": dict(by_class), "op": dict(by_op), "total": sum(wall.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cells", default="lstm")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30, help="batches profiled per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    split = corpus.split(seed=0)
    weights = class_weights(split.train, corpus.num_classes, 0.3)
    epoch = batches(split.train, corpus.vocab, args.batch_size, shuffle=True, seed=0)
    data = list(itertools.islice(epoch, args.batches))
    for cell, threads in itertools.product(args.cells.split(","), [int(t) for t in args.threads.split(",")]):
        torch.set_num_threads(threads)
        runs: dict = {"hand": [], "fused": []}
        models = {}
        for engine in runs:
            torch.manual_seed(0)
            model = CharClassifier(ModelConfig(len(corpus.vocab), corpus.num_classes, cell, args.hidden_size, engine, dropout=0.5))
            optimizer = torch.optim.AdamW(model.parameters(), lr=0.006, weight_decay=1e-4, fused=True)
            models[engine] = (model, optimizer)
            profile_batches(model, optimizer, data[:3], weights)  # warm-up
        for repeat in range(args.repeats):
            for engine in ("hand", "fused") if repeat % 2 == 0 else ("fused", "hand"):
                runs[engine].append(profile_batches(*models[engine], data, weights))
        report(cell, threads, runs, args.top)
    return 0


def report(cell: str, threads: int, runs: dict, top: int) -> None:
    plural = "s" if threads > 1 else ""
    print(f"\n### {cell}, {threads} thread{plural}: share of the profiled time (median of {len(runs['hand'])})\n")
    phases = ("recurrent forward", "recurrent backward", "rest of forward", "loss", "rest of backward", "clip", "adamw")
    classes = ("matmul", "fused kernel", "elementwise", "index/copy", "python")
    print("| engine | phase | " + " | ".join(classes) + " | phase total |")
    print("|---|---|" + "---|" * (len(classes) + 1))
    for engine, results in runs.items():
        for phase in phases:
            shares = [
                statistics.median(r["class"].get((phase, c), 0.0) / r["total"] for r in results) for c in classes
            ]
            total = statistics.median(
                sum(r["class"].get((phase, c), 0.0) for c in classes) / r["total"] for r in results
            )
            print(f"| {engine} | {phase} | " + " | ".join(f"{s:.1%}" for s in shares) + f" | {total:.1%} |")
        all_classes = [
            statistics.median(sum(v for (p, c), v in r["class"].items() if c == cls) / r["total"] for r in results)
            for cls in classes
        ]
        print(f"| {engine} | **all** | " + " | ".join(f"**{s:.1%}**" for s in all_classes) + " | 100% |")
    ratio = statistics.median(f["total"] / h["total"] for h, f in zip(runs["hand"], runs["fused"]))
    print(f"\nprofiled time fused/hand (same run, median of pairs): {ratio:.2f}\n")
    for engine, results in runs.items():
        ops: dict = defaultdict(list)
        for r in results:
            for key, v in r["op"].items():
                ops[key].append(v / r["total"])
        ranked = sorted(ops.items(), key=lambda kv: -statistics.median(kv[1]))[:top]
        print(f"{engine}, top operators by self time: " + "; ".join(
            f"{op.removeprefix('aten::')} ({phase}) {statistics.median(v):.1%}" for (phase, op), v in ranked
        ))
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
