"""The benchmark scripts in bench/ stay runnable and write what they claim.

    .venv/bin/python -m pytest tests/test_bench.py -q
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from helpers import make_names_folder

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


def test_speed_bench_writes_every_figure(tmp_path, capsys):
    speed = load_bench("speed")
    data = make_names_folder(tmp_path / "names", NAMES)
    out = tmp_path / "results.json"
    argv = ["--data-dir", str(data), "--hidden-size", "8", "--loop-names", "4", "--repeats", "1"]
    argv += ["--predict-names", "50", "--latency-calls", "3", "--out", str(out)]
    assert speed.main(argv) == 0
    results = json.loads(out.read_text())
    assert set(results["cells"]) == set(CELL_NAMES)
    for cell, figures in results["cells"].items():
        for key in ("loop_names_per_s", "hand_names_per_s", "fused_names_per_s", "hand_gflops", "matmul_peak_gflops"):
            assert figures[key] > 0, (cell, key)
        assert figures["matmul_peak_gflops"] >= figures["matmul_median_gflops"] > 0
        assert figures["replay_gflops"] > 0 and figures["replay_share_of_hand_epoch"] > 0
        assert figures["hand_over_loop"] == pytest.approx(figures["hand_names_per_s"] / figures["loop_names_per_s"])
    assert results["cells"]["lstm"]["predict_names_per_s"] > 0
    assert results["cells"]["lstm"]["predict_latency_ms"] > 0
    assert results["machine"]["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert "hand/loop" in printed and "lstm" in printed
