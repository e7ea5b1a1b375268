"""Checks written against faults that passed the rest of the suite when planted by hand.

    PYTHONPATH=src .venv/bin/python -m pytest tests/test_audit.py -q

Each test names the fault it catches: the accuracy verdict judged on validation,
clipping that clips nothing, batches that are never shuffled, calibration bins off by
one, the server keeping a run's last epoch rather than its best.
"""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from helpers import make_names_folder, one_thread, separable_names, tiny_config

from namelab.core import native
from namelab.core.model import CharClassifier
from namelab.data.corpus import LETTERS, Corpus, Example, Vocab, batches, normalize
from namelab.experiment.stats import describe, judge_findings
from namelab.inference.calibrate import ECE_BINS, expected_calibration_error, reliability_bins
from namelab.runs.checkpoint import CONFIG, HISTORY, MANIFEST
from namelab.runs.config import build_model
from namelab.serve.runs import find_runs
from namelab.train.loop import train_epoch

# -- the accuracy ranking is judged on test accuracy -------------------------------------


def test_the_accuracy_ranking_is_the_paired_test_differences():
    # Validation and training accuracies rank the models the other way round: only test decides.
    test = {"lstm": [0.80, 0.81, 0.82], "gru": [0.75, 0.77, 0.76], "rnn": [0.60, 0.62, 0.61]}
    val = {"lstm": [0.50, 0.51, 0.52], "gru": [0.70, 0.71, 0.72], "rnn": [0.90, 0.91, 0.92]}
    models = {
        m: {
            "test_accuracy": describe(test[m]),
            "final_val_accuracy": describe(val[m]),
            "final_train_accuracy": describe(val[m]),
            "epochs_to_95": describe([3, 3, 3]),
            "val_loss_change_std": describe([0.1, 0.1, 0.1]),
            "seconds_per_epoch": describe([1.0, 1.0, 1.0]),
            "parameters": 100,
        }
        for m in test
    }
    gradient = {m: {"ratio_init": describe([1e-3] * 3), "ratio_trained": describe([1e-3] * 3)} for m in test}
    finding = next(f for f in judge_findings(models, gradient) if f["key"] == "accuracy_ranking")
    assert finding["verdict"] == "supported"
    for pair in finding["pairs"]:
        expected = np.subtract(test[pair["first"]], test[pair["second"]])
        assert pair["mean"] == pytest.approx(expected.mean()) and pair["positive"] == 3
    assert {m: d["values"] for m, d in finding["means"].items()} == test


# -- gradient clipping clips the step that is taken -----------------------------------------


class RecordingSGD(torch.optim.SGD):
    """SGD that records the global gradient norm it steps with."""

    def __init__(self, params):
        super().__init__(params, lr=0.1)
        self.norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return super().step(closure)


@pytest.mark.parametrize("clip_norm", [1e-4, 1e3])
def test_the_step_taken_is_clipped_to_clip_norm(clip_norm: float):
    config = tiny_config(clip_norm=clip_norm, batch_size=64)
    vocab = Vocab()
    examples = [Example(name, k % 3) for k, name in enumerate(["Abe", "Bohm", "Lund", "Ito", "Kim", "Orr"])]
    torch.manual_seed(0)
    model: CharClassifier = build_model(config, len(vocab), 3)
    optimizer = RecordingSGD(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with one_thread():
        train_epoch(model, optimizer, scheduler, examples, vocab, config, torch.ones(3), epoch=1)
    [norm] = optimizer.norms  # one batch, one step
    if clip_norm < 1:
        assert 0 < norm <= clip_norm * (1 + 1e-4)  # an untrained model's gradient is far above 1e-4
    else:
        assert 1e-3 < norm < clip_norm  # a loose limit leaves the gradient as it is


# -- shuffled batches come in a shuffled order --------------------------------------------


def test_shuffled_batches_are_not_in_length_order():
    examples = [Example("a" * (1 + k % 12), k % 3) for k in range(96)]  # 8 names of each length 1..12

    def longest_per_batch(seed: int) -> list[int]:
        return [int(lengths.max()) for _, lengths, _ in batches(examples, Vocab(), 8, shuffle=True, seed=seed)]

    orders = [longest_per_batch(seed) for seed in range(5)]
    assert all(sorted(order) == list(range(1, 13)) for order in orders)  # each batch still one length
    assert sum(order != sorted(order) for order in orders) == 5  # 12! orders: sorted by chance ~never
    assert longest_per_batch(0) != longest_per_batch(1)


# -- calibration bins: each confidence in its (low, high] -----------------------------------


def test_each_confidence_falls_in_its_bin_and_the_ece_follows():
    # Top-class confidences spread over every bin, none on a bin edge but 1.0 (the last bin's high end).
    confidences = [0.30, 0.34, 0.41, 0.5, 0.55, 0.62, 0.7, 0.71, 0.8, 0.86, 0.93, 0.99, 1.0]
    rows = []
    for c in confidences:
        rest = (1 - c) / 3
        rows.append([c, rest, rest, rest])
    probs = torch.tensor(rows, dtype=torch.float64)
    targets = torch.tensor([k % 2 for k in range(len(confidences))])  # right on even rows
    bins = reliability_bins(probs, targets)
    expected_counts = [0] * ECE_BINS
    gaps = [0.0] * ECE_BINS
    for k, c in enumerate(confidences):
        [b] = [b for b, row in enumerate(bins) if row["low"] < c <= row["high"]]
        expected_counts[b] += 1
        gaps[b] += c - float(k % 2 == 0)
    assert [row["count"] for row in bins] == expected_counts
    for row, count in zip(bins, expected_counts):
        if count:
            assert row["low"] < row["confidence"] <= row["high"]
    expected_ece = sum(abs(g) for g in gaps) / len(confidences)
    assert expected_calibration_error(probs, targets) == pytest.approx(expected_ece)


# -- the server keeps the best epoch of a run, not the last ---------------------------------


def fake_run(folder: Path, history: list[float]) -> Path:
    folder.mkdir(parents=True)
    (folder / CONFIG).write_text(json.dumps({"config": {"model": "lstm"}}))
    (folder / HISTORY).write_text(json.dumps([{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(history)]))
    (folder / MANIFEST).write_text(json.dumps({"files": {}}))
    return folder


def test_a_compare_folder_serves_the_run_whose_best_epoch_is_best(tmp_path: Path):
    peaked = fake_run(tmp_path / "runs" / "lstm-seed0", [0.60, 0.90, 0.50])  # best mid-run, worst at the end
    steady = fake_run(tmp_path / "runs" / "lstm-seed1", [0.60, 0.70, 0.80])  # best at the end
    assert find_runs(tmp_path) == [peaked]
    assert steady.is_dir()


# -- normalization: both curly-quote pairs ---------------------------------------------------


@pytest.mark.parametrize("quoted", ["\u2018Nguyen\u2019", "\u2019Nguyen\u2019", "\u201cNguyen\u201d", "\u201eNguyen\u201c"])
def test_curly_quotes_around_a_name_go(quoted: str):
    assert normalize(quoted) == "Nguyen"


# -- no silent skip under CI ----------------------------------------------------------------


def outcome(check) -> tuple[str, str]:
    """What a requirement does here: ("fail" | "skip" | "run", message); caught, or it would skip this test."""
    try:
        check()
    except pytest.skip.Exception as err:
        return "skip", str(err)
    except pytest.fail.Exception as err:
        return "fail", str(err)
    return "run", ""


@pytest.mark.parametrize("ci, expected", [("true", "fail"), ("1", "fail"), ("YES", "fail"), ("", "skip"), ("false", "skip")])
def test_a_missing_chromium_or_kernel_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path: Path, ci, expected):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(helpers, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(native, "_loaded", lambda: (None, "g++: not found"))
    kind, message = outcome(helpers.require_chromium)
    assert kind == expected and f"no executable {tmp_path / 'chromium'}" in message
    kind, message = outcome(helpers.require_cpp_kernel)
    assert kind == expected and "cannot be built here (g++: not found)" in message
    if expected == "fail":
        assert message.startswith(f"CI={ci} and the C++ LSTM kernel tests cannot run")


# -- the split groups names as the model reads them --------------------------------------------


@pytest.mark.parametrize("seed", [0, 2, 5, 7, 8, 11])
def test_names_equal_but_for_case_share_a_split(tmp_path: Path, seed: int):
    rows = separable_names(per_class=30)
    rows["Alpha"] += ["Ao", "ao", "AO"]  # one name to a caseless model, three spellings
    rows["Beta"] += ["Bdk", "bDK"]
    rows["Gamma"] += ["ao"]  # and in another language too
    corpus = Corpus.from_folder(make_names_folder(tmp_path, rows))
    split = corpus.split(seed=seed)
    where: dict[str, set[str]] = {}
    for part in ("train", "val", "test"):
        for example in getattr(split, part):
            where.setdefault(example.name.lower(), set()).add(part)
    assert all(len(parts) == 1 for parts in where.values()), {k: v for k, v in where.items() if len(v) > 1}
    assert sum(len(getattr(split, part)) for part in ("train", "val", "test")) == len(corpus.pairs)
    # A vocabulary with capitals reads "Ao" and "ao" as two names, so they are split as two.
    assert Vocab(LETTERS).key("Ao") != Vocab(LETTERS).key("ao") and Vocab().key("Ao") == Vocab().key("ao")


EXPECTED_TEST_NAMES = ["Ioi", "Ueuuu", "Ggkgdtb", "Kdg", "Sllrnnr", "Srr"]


def test_a_corpus_without_such_spellings_splits_as_before(tmp_path: Path):
    corpus = Corpus.from_folder(make_names_folder(tmp_path, separable_names(per_class=20)))
    # The split of this corpus before names were grouped by case (seed 0), as the tests' fixtures know it.
    split = corpus.split(seed=0)
    assert [e.name for e in split.test] == EXPECTED_TEST_NAMES
