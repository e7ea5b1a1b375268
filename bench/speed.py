"""How fast namelab trains and predicts, against the original one-name-at-a-time loop.

    NAMELAB_DATA=/work/shared/data/names python bench/speed.py          # all three cells, ~3-5 min
    python bench/speed.py --cells lstm --repeats 5 --threads 1           # one cell, one core
    python bench/speed.py --batch-size 128                               # default: train's batch size

For each cell (rnn, lstm, gru) it measures, in the same run, on the real train split:

* training throughput in names per second of the original loop (bench/loop_reference.py,
  on a random subsample of ``--loop-names`` names, on one thread as the original ran:
  its tiny products gain nothing from a second; timed last), of namelab's hand-written cells and
  of torch's fused layers (``engine="fused"``): one epoch of ``namelab.train.loop`` each, timed
  by ``train`` itself (batching, forward, backward, clipping and AdamW included,
  validation excluded), with the lengths of the real names;
* the ratios hand/loop and hand/fused (the median of the ratios within each repeat,
  where both engines ran back to back);
* the hand engine's achieved matrix FLOP/s, against torch.matmul's at the same shapes.
  Convention: per character after a name's first, ``2·H·G·H`` forward (the recurrent
  product; the first character's previous state is zero, so it needs none) and twice
  that backward (gradient of the state and of ``W_hh``); per name ``2·H·C`` for the
  output layer, times 3 likewise. The input projection is a row lookup: 0 FLOPs;
* the same products replayed alone (``matmul_replay``): their rate, and the share of a
  hand epoch they take; the rest of the epoch is everything that is not a product;
* for the LSTM, ``Predictor.predict`` on ``--predict-names`` names at once, and the median
  latency of a one-name call, with each ``--backends`` (torch, onnx: namelab.backends) side
  by side; figures of a backend other than torch carry its name (``predict_names_per_s_onnx``).

Every figure is the median of ``--repeats`` runs (the matmul peak: the best of bursts taken
between the timed epochs; their median is kept too, and the LSTM target compares against
the median). Nothing here passes or fails on time: it prints figures and writes them to
``bench/results.json``.

Figures from a busy machine are not figures of the code: a neighbour slows the one-name
loop far more than the batched engines (it flatters hand/loop) and shifts hand/fused
either way. So the 1-minute load average is recorded before and after the run, and a run
that would start with it above ``LOAD_LIMIT`` (0.5) is refused unless ``--allow-load``
is given; such a run is marked ``"under_load": true`` in the results and says so when it
prints. Wait for the load to settle (``uptime``) rather than pass ``--allow-load`` for a
figure meant for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loop_reference  # noqa: E402

from namelab.core.cells import CELLS as CELL_CLASSES  # noqa: E402
from namelab.core.engine import pack  # noqa: E402
from namelab.core.model import CharClassifier  # noqa: E402
from namelab.core.native import lstm_ops  # noqa: E402
from namelab.data.corpus import Corpus, Split, batches  # noqa: E402
from namelab.data.download import resolve_data_dir  # noqa: E402
from namelab.inference.base import Predictor  # noqa: E402
from namelab.inference.load import load_predictor
from namelab.runs.config import TrainConfig
from namelab.runs.env import machine as env_machine  # noqa: E402
from namelab.train.loop import train  # noqa: E402

CELLS = tuple(CELL_CLASSES)
GATES = {name: cell.num_gates for name, cell in CELL_CLASSES.items()}


LOAD_LIMIT = 0.5  # 1-minute load average above which a run is refused (--allow-load runs it, marked)
LOOP_THREADS = 1  # the original loop ran on one thread; its tiny products gain nothing from a second


def load_average() -> float:
    """The 1-minute load average, rounded as the results record it."""
    return round(os.getloadavg()[0], 2)


def machine(threads: int, load: float) -> dict:
    return {
        **env_machine(),
        "threads": threads,
        "loop_threads": LOOP_THREADS,
        "load_limit": LOAD_LIMIT,
        "load_average_start": load,
        "under_load": load > LOAD_LIMIT,
    }


def loop_rates(cell: str, examples: list, corpus: Corpus, hidden_size: int, repeats: int) -> list[float]:
    """Names per second of the original loop, on ``LOOP_THREADS`` (one) as the original ran."""
    threads = torch.get_num_threads()
    torch.set_num_threads(LOOP_THREADS)
    try:
        torch.manual_seed(0)
        model = loop_reference.make_model(cell, len(corpus.vocab), hidden_size, corpus.num_classes)
        loop_reference.train_names(model, examples[: max(1, len(examples) // 10)], len(corpus.vocab))  # warm-up
        return [len(examples) / loop_reference.train_names(model, examples, len(corpus.vocab)) for _ in range(repeats)]
    finally:
        torch.set_num_threads(threads)


def epoch_seconds(config: TrainConfig, corpus: Corpus, split: Split):
    """Seconds of one training epoch as ``train`` times it, and the trained result."""
    result = train(config, corpus, split=split, log=lambda line: None)
    return result.history[0]["seconds"], result


def train_flops(split: Split, cell: str, hidden_size: int, num_classes: int) -> float:
    """Matrix FLOPs of one training epoch (see the module docstring for the convention)."""
    steps_after_first = sum(len(e.name) - 1 for e in split.train)
    recurrent = 2 * hidden_size * GATES[cell] * hidden_size
    output = 2 * hidden_size * num_classes
    return 3 * (steps_after_first * recurrent + len(split.train) * output)


class MatmulPeak:
    """torch.matmul's rate of ``(B, H) x (H, G·H)`` in float32: the best of short bursts.

    Bursts of ~0.1 s are taken before and after every timed epoch, so the peak is sampled
    across the same minutes as the training it is compared with: a busy spell on the
    shared cores lowers some bursts, not the best one.
    """

    def __init__(self, batch: int, hidden_size: int, gates: int):
        self.a = torch.randn(batch, hidden_size)
        self.b = torch.randn(hidden_size, gates * hidden_size)
        self.out = torch.empty(batch, gates * hidden_size)
        self.flops = 2 * batch * hidden_size * gates * hidden_size
        self.calls = 0
        self.rates: list[float] = []

    def sample(self, bursts: int = 3) -> None:
        if not self.calls:  # warm-up, and how many calls fill ~0.1 s
            start = time.perf_counter()
            while time.perf_counter() - start < 0.05:
                torch.matmul(self.a, self.b, out=self.out)
                self.calls += 1
            self.calls *= 2
        for _ in range(bursts):
            start = time.perf_counter()
            for _ in range(self.calls):
                torch.matmul(self.a, self.b, out=self.out)
            self.rates.append(self.calls * self.flops / (time.perf_counter() - start) / 1e9)

    @property
    def gflops(self) -> float:
        return max(self.rates)


def step_sizes(split: Split, vocab, batch_size: int) -> list[list[int]]:
    """Names per step of every batch of an epoch, as ``batches`` forms and ``pack`` lays them out."""
    return [pack(ids, lengths).batch_sizes for ids, lengths, _ in batches(split.train, vocab, batch_size)]


def matmul_replay(sizes: list[list[int]], cell: str, batch_size: int, hidden_size: int, num_classes: int) -> float:
    """Seconds that one epoch's matrix products take when run alone, with torch.matmul.

    The products of every batch of an epoch (``sizes``, from :func:`step_sizes`), at their
    real shapes: per step after the first, ``(n_t, H) x (H, G·H)`` forward and
    ``(n_t, G·H) x (G·H, H)`` backward; per batch the weight gradient
    ``(G·H, N) x (N, H)`` and the output layer's three. What the epoch spends beyond
    this is the rest of the step: gate arithmetic, packing, dropout, loss, AdamW.
    """
    H, G = hidden_size, GATES[cell]
    rows = max(sum(s) for s in sizes)
    w, w_back, w_out = torch.randn(H, G * H), torch.randn(G * H, H), torch.randn(H, num_classes)
    states, gates = torch.randn(rows, H), torch.randn(rows, G * H)
    grad_states, out = torch.empty(rows, H), torch.empty(batch_size, num_classes)
    grad_w, grad_out = torch.empty(G * H, H), torch.empty(H, num_classes)
    start = time.perf_counter()
    for steps in sizes:
        offset = 0
        for n in steps[1:]:
            torch.matmul(states[offset : offset + n], w, out=gates[offset : offset + n])
            offset += n
        offset = 0
        for n in steps[1:]:
            torch.matmul(gates[offset : offset + n], w_back, out=grad_states[offset : offset + n])
            offset += n
        torch.matmul(gates[:offset].t(), states[:offset], out=grad_w)
        batch = steps[0]
        torch.matmul(states[:batch], w_out, out=out[:batch])
        torch.matmul(out[:batch], w_out.t(), out=grad_states[:batch])
        torch.matmul(states[:batch].t(), out[:batch], out=grad_out)
    return time.perf_counter() - start


def predict_figures(predictor: Predictor, names: list[str], latency_calls: int, repeats: int) -> tuple[float, float]:
    """Names per second of one ``predict`` call on all ``names``; median one-name latency (ms)."""
    predictor.predict(names[:100])  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(names)
        rates.append(len(names) / (time.perf_counter() - start))
    latencies = []
    for i in range(latency_calls):
        start = time.perf_counter()
        predictor.predict([names[i % len(names)]])
        latencies.append(time.perf_counter() - start)
    return statistics.median(rates), statistics.median(latencies) * 1e3


def engine_figures(
    cell: str, corpus: Corpus, split: Split, warm_split: Split, base: dict, args: argparse.Namespace
) -> tuple[dict, CharClassifier | None]:
    """Hand and fused training speed of one cell, FLOP/s and the matmul peak; the last hand model."""
    configs = {engine: TrainConfig(cell=cell, engine=engine, **base) for engine in ("hand", "fused")}
    for config in configs.values():
        epoch_seconds(config, corpus, warm_split)
    seconds: dict[str, list[float]] = {"hand": [], "fused": []}
    model = None
    peak = MatmulPeak(args.batch_size, args.hidden_size, GATES[cell])
    peak.sample()
    sizes, replay = step_sizes(split, corpus.vocab, args.batch_size), []
    for repeat in range(args.repeats):  # interleaved, one first then the other, so a busy spell hits both
        for engine in ("hand", "fused") if repeat % 2 == 0 else ("fused", "hand"):
            elapsed, result = epoch_seconds(configs[engine], corpus, split)
            seconds[engine].append(elapsed)
            model = result.model if engine == "hand" else model
            peak.sample()
        replay.append(matmul_replay(sizes, cell, args.batch_size, args.hidden_size, corpus.num_classes))
    figures: dict = {}
    for engine in configs:
        figures[f"{engine}_names_per_s"] = len(split.train) / statistics.median(seconds[engine])
        figures[f"{engine}_runs"] = [len(split.train) / s for s in seconds[engine]]
    # Each repeat times both engines back to back, so the ratio within a repeat is the
    # least disturbed by a busy spell; the median of those is the reported ratio.
    figures["hand_over_fused"] = statistics.median(f / h for h, f in zip(seconds["hand"], seconds["fused"]))
    flops = train_flops(split, cell, args.hidden_size, corpus.num_classes)
    figures["hand_gflops"] = flops / statistics.median(seconds["hand"]) / 1e9
    figures["matmul_peak_gflops"] = peak.gflops
    figures["matmul_median_gflops"] = statistics.median(peak.rates)
    # The epoch's own products run alone: their rate, and their share of a hand epoch.
    figures["replay_gflops"] = flops / min(replay) / 1e9
    figures["replay_share_of_hand_epoch"] = min(replay) / statistics.median(seconds["hand"])
    figures["hand_peak_fraction"] = figures["hand_gflops"] / figures["matmul_peak_gflops"]
    figures["hand_median_burst_fraction"] = figures["hand_gflops"] / figures["matmul_median_gflops"]
    return figures, model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="names folder (default: $NAMELAB_DATA, else the cache)")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated, default all three")
    parser.add_argument("--hidden-size", type=int, default=TrainConfig.hidden_size)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="default: train's default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    parser.add_argument("--loop-names", type=int, default=1000, help="train names the one-name loop is timed on")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is kept")
    parser.add_argument("--predict-names", type=int, default=20_000)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument(
        "--backends", default="torch", help="comma-separated prediction backends to time side by side: torch, onnx"
    )
    parser.add_argument(
        "--allow-load",
        action="store_true",
        help=f"run even if the 1-minute load average is above {LOAD_LIMIT} (the results are marked under_load)",
    )
    parser.add_argument(
        "--run",
        type=Path,
        action="append",
        default=[],
        help="also time Predictor.predict on this run folder (any kind: `namelab train --preset best` writes an "
        "ensemble); repeatable",
    )
    parser.add_argument(
        "--predict-only", action="store_true", help="time prediction on the --run folders only: no training figures"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args(argv)
    args.cells = [] if args.predict_only else [c.strip() for c in args.cells.split(",") if c.strip()]
    if args.predict_only and not args.run:
        parser.error("--predict-only times the --run folders: give at least one")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backends or set(args.backends) - {"torch", "onnx"}:
        parser.error(f"--backends: choose from torch, onnx, got {','.join(args.backends) or '(none)'}")
    unknown = sorted(set(args.cells) - set(CELLS))
    if unknown or not (args.cells or args.predict_only):
        parser.error(f"--cells: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CELLS)}")
    for name in ("hidden_size", "batch_size", "threads", "loop_names", "repeats", "predict_names", "latency_calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = load_average()
    if load > LOAD_LIMIT and not args.allow_load:
        print(
            f"refused: the 1-minute load average is {load} (above {LOAD_LIMIT}), so other processes would skew "
            "every figure; wait until `uptime` shows less, or pass --allow-load to run anyway (the results "
            "are then marked under_load)",
            file=sys.stderr,
        )
        return 2
    if args.threads != torch.get_num_threads():
        torch.set_num_threads(args.threads)
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    split = corpus.split(seed=0)
    loop_sample = random.Random(0).sample(split.train, min(args.loop_names, len(split.train)))
    loop_examples = [(corpus.vocab.encode(e.name), e.label) for e in loop_sample]
    warm_split = Split(split.train[:256], split.val[:64], split.test[:64])
    base = {"hidden_size": args.hidden_size, "batch_size": args.batch_size, "epochs": 1, "device": "cpu"}
    results: dict = {"machine": machine(args.threads, load), "settings": {}, "cells": {}}
    results["settings"] = {
        "hidden_size": args.hidden_size,
        "batch_size": args.batch_size,
        "dtype": "float32",
        "train_names": len(split.train),
        "loop_names": len(loop_examples),
        "repeats": args.repeats,
        # The hand LSTM's step kernel (NAMELAB_KERNEL): "cpp" where the C++ pass runs, else "torch".
        "lstm_kernel": "cpp" if lstm_ops(torch.zeros(1)) is not None else "torch",
        # What each timed epoch ran with (cell and engine aside): train's defaults but these.
        "train_config": {k: v for k, v in asdict(TrainConfig(**base)).items() if k not in ("cell", "engine")},
    }
    print(
        f"{results['machine']['cpu']}, {args.threads} threads, torch {torch.__version__}, "
        f"load average {results['machine']['load_average_start']}; hidden {args.hidden_size}, "
        f"batch {args.batch_size}, {len(split.train)} train names, loop on {len(loop_examples)} "
        f"on {LOOP_THREADS} thread; LSTM step kernel: {results['settings']['lstm_kernel']}",
        flush=True,
    )
    if results["machine"]["under_load"]:
        print(f"UNDER LOAD (above {LOAD_LIMIT} at the start, --allow-load): not figures for the README", flush=True)
    lstm_model = None
    for cell in args.cells:
        figures, model = engine_figures(cell, corpus, split, warm_split, base, args)
        results["cells"][cell] = figures
        lstm_model = model if cell == "lstm" else lstm_model
        print(
            f"{cell}: hand {figures['hand_names_per_s']:,.0f} names/s, fused {figures['fused_names_per_s']:,.0f} "
            f"({figures['hand_over_fused']:.2f}x), {figures['hand_gflops']:.1f} of {figures['matmul_peak_gflops']:.1f} "
            "GFLOP/s",
            flush=True,
        )
    if lstm_model is not None:
        names = [name for name, _ in corpus.pairs]
        names = (names * (args.predict_names // len(names) + 1))[: args.predict_names]
        random.Random(1).shuffle(names)
        for backend in args.backends:
            predictor = Predictor(lstm_model, corpus.vocab, corpus.labels, backend=backend)
            rate, latency = predict_figures(predictor, names, args.latency_calls, args.repeats)
            results["cells"]["lstm"].update(
                {f"predict_names_per_s{_suffix(backend)}": rate, f"predict_latency_ms{_suffix(backend)}": latency}
            )
    names = [name for name, _ in corpus.pairs]
    names = (names * (args.predict_names // len(names) + 1))[: args.predict_names]
    random.Random(1).shuffle(names)
    if args.run:
        results["runs"] = {}
    for run in args.run:
        results["runs"][str(run)] = {}
        for backend in args.backends:
            predictor = load_predictor(run, backend=backend)
            rate, latency = predict_figures(predictor, names, args.latency_calls, args.repeats)
            results["runs"][str(run)].update(
                {f"predict_names_per_s{_suffix(backend)}": rate, f"predict_latency_ms{_suffix(backend)}": latency}
            )
            print(
                f"{run} predict ({backend}): {rate:,.0f} names/s on {len(names):,} names; one name: {latency:.2f} ms",
                flush=True,
            )
    # The one-thread loop runs last: switching torch's thread count back and forth between
    # the engines' timings would be one more thing that could disturb them.
    for cell in args.cells:
        figures = results["cells"][cell]
        loop = loop_rates(cell, loop_examples, corpus, args.hidden_size, args.repeats)
        figures.update(loop_names_per_s=statistics.median(loop), loop_runs=loop)
        figures["hand_over_loop"] = figures["hand_names_per_s"] / figures["loop_names_per_s"]
    print(f"(loop n/s: the one-name loop on {LOOP_THREADS} thread; hand and fused on {args.threads})")
    print(HEADER)
    for cell in args.cells:
        print(_row(cell, results["cells"][cell]))
    if "predict_names_per_s" in results["cells"].get("lstm", {}):
        lstm = results["cells"]["lstm"]
        for backend in args.backends:
            print(
                f"lstm predict ({backend}): {lstm[f'predict_names_per_s{_suffix(backend)}']:,.0f} names/s on "
                f"{args.predict_names:,} names; one name: {lstm[f'predict_latency_ms{_suffix(backend)}']:.2f} ms "
                f"(median of {args.latency_calls})"
            )
    results["machine"]["load_average_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    flag = " (UNDER LOAD: not figures for the README)" if results["machine"]["under_load"] else ""
    print(
        f"load average {results['machine']['load_average_start']} at the start, "
        f"{results['machine']['load_average_end']} at the end{flag}; figures in {args.out}"
    )
    return 0


def _suffix(backend: str) -> str:
    """torch's figures keep their historical names; another backend's carry its name."""
    return "" if backend == "torch" else f"_{backend}"


HEADER = (
    f"{'cell':5} {'loop n/s':>9} {'hand n/s':>9} {'fused n/s':>9} {'hand/loop':>9} {'hand/fused':>10} "
    f"{'hand GF/s':>9} {'peak GF/s':>9} {'of peak':>7} {'of median':>9} {'matmul share':>12}"
)


def _row(cell: str, f: dict) -> str:
    return (
        f"{cell:5} {f['loop_names_per_s']:9,.0f} {f['hand_names_per_s']:9,.0f} {f['fused_names_per_s']:9,.0f} "
        f"{f['hand_over_loop']:8.1f}x {f['hand_over_fused']:9.2f}x {f['hand_gflops']:9.1f} "
        f"{f['matmul_peak_gflops']:9.1f} {f['hand_peak_fraction']:7.0%} {f['hand_median_burst_fraction']:9.0%} "
        f"{f['replay_share_of_hand_epoch']:12.0%}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
