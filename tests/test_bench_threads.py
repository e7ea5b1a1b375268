"""bench/threads.py stays runnable: a quick run writes every figure and ratio it promises.

    .venv/bin/python -m pytest tests/test_bench_threads.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_bench, make_names_folder, separable_names


def test_ratios_compare_each_default_with_the_idle_one_thread_epoch() -> None:
    bench = load_bench("threads", "threads_bench")
    figures = {
        "torch-default": {"idle": {"seconds": 1.6}, "neighbour": {"seconds": 5.2}},
        "one-thread": {"idle": {"seconds": 2.0}, "neighbour": {"seconds": 2.3}},
        "adaptive": {"idle": {"seconds": 1.7}, "neighbour": {"seconds": 2.4}},
    }
    ratios = bench.ratios_of(figures)
    assert ratios["torch-default_with_neighbour_over_idle_one_thread"] == pytest.approx(2.6)
    assert ratios["adaptive_with_neighbour_over_idle_one_thread"] == pytest.approx(1.2)
    assert ratios["adaptive_idle_over_best_idle"] == pytest.approx(1.7 / 1.6)
    assert ratios["torch-default_neighbour_over_idle"] == pytest.approx(5.2 / 1.6)


def test_quick_run_writes_figures_for_every_configuration_and_condition(tmp_path: Path, capsys) -> None:
    bench = load_bench("threads", "threads_bench")
    names = make_names_folder(tmp_path / "names", separable_names(per_class=30))
    out = tmp_path / "threads.json"
    argv = ["--quick", "--data-dir", str(names), "--batches", "2", "--hidden-size", "8",
            "--configs", "one-thread,adaptive", "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert set(report["seconds"]) == {"one-thread", "adaptive"}
    for config in report["seconds"].values():
        for condition in ("idle", "neighbour"):
            assert config[condition]["seconds"] > 0 and config[condition]["threads"][0] >= 1
    assert report["seconds"]["one-thread"]["idle"]["threads"] == [1]
    assert "adaptive_with_neighbour_over_idle_one_thread" in report["ratios"]
    assert report["machine"]["usable_cpus"] >= 1
    printed = capsys.readouterr().out
    assert "adaptive_idle_over_best_idle" in printed


def test_unknown_configuration_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit):
        load_bench("threads", "threads_bench").main(["--quick", "--configs", "turbo"])
    assert "turbo" in capsys.readouterr().err
