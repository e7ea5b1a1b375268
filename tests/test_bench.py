"""The benchmark scripts in bench/ stay runnable and write what they claim.

    .venv/bin/python -m pytest tests/test_bench.py -q
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_names_folder, require_cpp_kernel

from namelab.data.corpus import Corpus

CELL_NAMES = ("rnn", "lstm", "gru")
VOCAB, CLASSES, HIDDEN = 9, 4, 6
REPO = Path(__file__).resolve().parents[1]
NAMES = {
    "Alpha": ["Abbot", "Adams", "Allen", "Archer", "Atkins", "Avery", "Aldridge", "Ashby", "Ames", "Ayers"],
    "Beta": ["Bauer", "Becker", "Bergmann", "Brandt", "Braun", "Busch", "Bohm", "Beck", "Berg", "Baum"],
}


def load_bench(module: str):
    spec = importlib.util.spec_from_file_location(module, REPO / "bench" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


def test_loop_reference_takes_the_tutorials_sgd_step():
    loop = load_bench("loop_reference")
    torch.manual_seed(0)
    model = loop.make_model("gru", VOCAB, HIDDEN, CLASSES)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    line = loop.line_to_tensor([1, 4, 2], VOCAB)
    assert line.shape == (3, 1, VOCAB) and line.sum() == 3
    loss = loop.train_one(model, torch.tensor([2]), line, torch.nn.NLLLoss())
    assert loss > 0
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - loop.LEARNING_RATE * p.grad, msg=name)
    # The appendix RNN, as printed, has no tanh: its hidden state is linear in the old one.
    rnn = loop.make_model("rnn", VOCAB, HIDDEN, CLASSES)
    x, h = torch.zeros(1, VOCAB), torch.randn(1, HIDDEN) * 100
    _, h_next = rnn(x, h)
    assert h_next.abs().max() > 1  # tanh would keep it within (-1, 1)


GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_KEYS = {
    "hand_names_per_s", "hand_runs", "fused_names_per_s", "fused_runs", "hand_over_fused", "hand_gflops",
    "matmul_peak_gflops", "matmul_median_gflops", "replay_gflops", "replay_share_of_hand_epoch",
    "hand_peak_fraction", "hand_median_burst_fraction", "loop_names_per_s", "loop_runs", "hand_over_loop",
}


def test_speed_bench_refuses_a_loaded_machine_unless_allowed(tmp_path, capsys, monkeypatch):
    speed = load_bench("speed")
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (speed.LOAD_LIMIT + 0.7, 0.0, 0.0))
    out = tmp_path / "results.json"
    # Refused before reading any data: the folder does not even exist.
    assert speed.main(["--data-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{speed.LOAD_LIMIT + 0.7}" in err and "--allow-load" in err
    assert not out.exists()


def test_speed_bench_writes_every_figure(tmp_path, capsys, monkeypatch):
    speed = load_bench("speed")
    # A loaded machine runs only with --allow-load, and the results say so; the load
    # is read at the start and at the end (here: made up, so the test does not depend on the machine's).
    loads = iter([(speed.LOAD_LIMIT + 1.0, 0.0, 0.0)] + [(0.25, 0.0, 0.0)] * 1000)
    monkeypatch.setattr(speed.os, "getloadavg", lambda: next(loads))
    # The one-name loop runs on one thread whatever --threads says; the engines on --threads.
    loop_threads, train_names = [], speed.loop_reference.train_names

    def counted_train_names(*args):
        loop_threads.append(torch.get_num_threads())
        return train_names(*args)

    monkeypatch.setattr(speed.loop_reference, "train_names", counted_train_names)
    # One burst per matmul-peak sample, not three: the samples would take most of the test.
    monkeypatch.setattr(speed.MatmulPeak, "sample", functools.partialmethod(speed.MatmulPeak.sample, bursts=1))
    data = make_names_folder(tmp_path / "names", NAMES)
    out = tmp_path / "results.json"
    hidden, repeats = 8, 3  # an odd count: the median is one of the runs
    argv = ["--data-dir", str(data), "--threads", "2", "--hidden-size", str(hidden), "--loop-names", "4"]
    argv += ["--repeats", str(repeats)]
    argv += ["--predict-names", "50", "--latency-calls", "3", "--out", str(out), "--allow-load"]
    threads = torch.get_num_threads()
    try:
        assert speed.main(argv) == 0
    finally:
        torch.set_num_threads(threads)  # main sets --threads for the whole process
    results = json.loads(out.read_text())
    assert set(results) == {"machine", "settings", "cells"}
    train_split = Corpus.from_folder(data).split(seed=0).train
    settings = results["settings"]
    assert settings["hidden_size"] == hidden and settings["repeats"] == repeats and settings["loop_names"] == 4
    assert settings["train_names"] == len(train_split)
    assert settings["lstm_kernel"] in ("cpp", "torch")
    assert settings["train_config"]["hidden_size"] == hidden and settings["train_config"]["epochs"] == 1
    assert list(results["cells"]) == list(CELL_NAMES)
    for cell, figures in results["cells"].items():
        assert set(figures) == CELL_KEYS | ({"predict_names_per_s", "predict_latency_ms"} if cell == "lstm" else set())
        for key in ("loop_names_per_s", "hand_names_per_s", "fused_names_per_s", "hand_gflops", "matmul_peak_gflops"):
            assert figures[key] > 0, (cell, key)
        assert figures["matmul_peak_gflops"] >= figures["matmul_median_gflops"] > 0
        assert figures["replay_gflops"] > 0 and figures["replay_share_of_hand_epoch"] > 0
        assert figures["hand_over_loop"] == pytest.approx(figures["hand_names_per_s"] / figures["loop_names_per_s"])
        # Every summary is the median of the runs it summarises, one run per repeat.
        for engine in ("hand", "fused", "loop"):
            runs = figures[f"{engine}_runs"]
            assert len(runs) == repeats and all(rate > 0 for rate in runs), (cell, engine)
            assert figures[f"{engine}_names_per_s"] == pytest.approx(statistics.median(runs)), (cell, engine)
            assert figures[f"{engine}_names_per_s"] in runs, (cell, engine)
        # hand/fused: the median of the ratios within each repeat (time of fused over time of hand).
        within = [hand / fused for hand, fused in zip(figures["hand_runs"], figures["fused_runs"])]
        assert figures["hand_over_fused"] == pytest.approx(statistics.median(within))
        # With an odd count of repeats the median is one of the ratios (up to rounding:
        # the bench divides times, this test divides rates).
        assert any(figures["hand_over_fused"] == pytest.approx(ratio) for ratio in within)
        # The FLOP count of the documented convention, counted here name by name: per
        # character after the first 2·H·G·H forward and twice that backward, per name 2·H·C × 3.
        flops = sum(3 * (len(e.name) - 1) * 2 * hidden * GATES[cell] * hidden + 3 * 2 * hidden * 2 for e in train_split)
        hand_seconds = len(train_split) / figures["hand_names_per_s"]
        assert figures["hand_gflops"] == pytest.approx(flops / hand_seconds / 1e9)
        # The replay does the same FLOPs: its rate over the epoch's is the epoch share it takes.
        assert figures["hand_gflops"] / figures["replay_gflops"] == pytest.approx(figures["replay_share_of_hand_epoch"])
        assert figures["hand_peak_fraction"] == pytest.approx(figures["hand_gflops"] / figures["matmul_peak_gflops"])
        assert figures["hand_median_burst_fraction"] == pytest.approx(
            figures["hand_gflops"] / figures["matmul_median_gflops"]
        )
        assert figures["hand_median_burst_fraction"] >= figures["hand_peak_fraction"]
    assert results["cells"]["lstm"]["predict_names_per_s"] > 0
    assert results["cells"]["lstm"]["predict_latency_ms"] > 0
    assert results["machine"]["torch"] == torch.__version__
    machine = results["machine"]
    assert machine["load_average_start"] == speed.LOAD_LIMIT + 1.0 and machine["under_load"] is True
    assert machine["load_average_end"] == 0.25 and machine["loop_threads"] == 1 and machine["threads"] == 2
    assert loop_threads and set(loop_threads) == {1}
    printed = capsys.readouterr().out
    assert "UNDER LOAD" in printed and "one-name loop on 1 thread" in printed
    assert "hand/loop" in printed and "lstm" in printed
    # The table printed is the file's figures.
    for cell, figures in results["cells"].items():
        row = next(line for line in printed.splitlines() if line.startswith(f"{cell} ") and "%" in line)
        assert f"{figures['hand_over_loop']:8.1f}x" in row and f"{figures['hand_over_fused']:9.2f}x" in row


def test_baseline_lists_finished_runs_and_refuses_unfinished_ones(tmp_path, tiny_runs, tiny_names_dir, capsys):
    from namelab.runs.checkpoint import read_metrics

    baseline = load_bench("baseline")
    table = tmp_path / "table.json"
    assert baseline.main(["--data-dir", str(tiny_names_dir), "--runs", str(tiny_runs["gru"]), "--json", str(table)]) == 0
    listed = json.loads(table.read_text())[-1]
    assert listed["model"] == f"{tiny_runs['gru']} (gru)"
    assert listed["accuracy"] == read_metrics(tiny_runs["gru"])["accuracy"]
    assert listed["seconds"] > 0

    unfinished = shutil.copytree(tiny_runs["gru"], tmp_path / "gru")
    (unfinished / "manifest.json").unlink()
    assert baseline.main(["--data-dir", str(tiny_names_dir), "--runs", str(unfinished)]) == 1
    assert "unfinished run" in capsys.readouterr().err


def test_lstm_step_bench_times_both_kernels_and_restores_the_setting(capsys, monkeypatch):
    from namelab.core import native

    require_cpp_kernel()
    monkeypatch.delenv(native.ENV_VAR, raising=False)
    bench = load_bench("lstm_step")
    threads = torch.get_num_threads()
    try:
        argv = ["--batch-size", "8", "--hidden-size", "8", "--length", "3", "--threads", "1", "--repeats", "1"]
        assert bench.main(argv + ["--inner", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    step_row, training_row = lines[2].split(" | "), lines[-1].split(" | ")
    assert step_row[0] == "1" and len(step_row) == 7 and all(float(cell.rstrip("x")) > 0 for cell in step_row[1:])
    assert training_row[0] == "1" and len(training_row) == 6
    assert native.ENV_VAR not in os.environ  # the bench sets the kernel per run and puts it back
