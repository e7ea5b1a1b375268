"""Tests for namelab.train.loop: the run folder it writes, seeding, learning.

    .venv/bin/python -m pytest tests/test_train.py -q

Every training here is tiny (hidden 16, a few epochs, a few dozen names, cpu) on a fake
dataset whose classes one character tells apart, so a model that learns gets them right.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_names_folder, one_thread, separable_names, tiny_config, train_tiny_run
from safetensors.torch import load_file

from namelab import __version__
from namelab.core.metrics import classification_metrics
from namelab.core.model import CharClassifier, ModelConfig
from namelab.data.corpus import Corpus, Split, Vocab, encode_batch
from namelab.data.download import dataset_checksum
from namelab.inference.backends import logits_in_order
from namelab.runs.config import TrainConfig, resolve_device
from namelab.train.loop import TrainResult, class_weights, predict_examples, train

HISTORY_KEYS = {"epoch", "seconds", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
EPOCHS = 4


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=24))


@pytest.fixture(scope="module")
def corpus(names_dir: Path) -> Corpus:
    return Corpus.from_folder(names_dir)


@pytest.fixture(scope="module")
def run(names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    out = tmp_path_factory.mktemp("run") / "lstm"
    return out, train_tiny_run(names_dir, out, epochs=EPOCHS)


def quiet_train(config: TrainConfig, corpus: Corpus, log=lambda line: None) -> TrainResult:
    with one_thread():
        return train(config, corpus, None, log=log)


def read(run_dir: Path, name: str):
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


# --- the run folder -----------------------------------------------------------------------


def test_run_folder_holds_the_seven_files_a_manifest_and_no_leftovers(run) -> None:
    out, _ = run
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "history.json", "manifest.json", "metrics.json", "model-card.md", "model.safetensors",
        "unknown.json", "unknown.safetensors",
    ]
    manifest = read(out, "manifest.json")["files"]
    assert manifest == {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("config.json", "model.safetensors", "history.json", "metrics.json", "unknown.json",
                     "unknown.safetensors", "model-card.md")
    }


def test_config_json_records_config_data_and_versions(run, corpus: Corpus, names_dir: Path) -> None:
    out, result = run
    config = read(out, "config.json")
    assert config["config"] == asdict(tiny_config(epochs=EPOCHS))
    assert config["vocab"] == Vocab().chars
    assert config["labels"] == corpus.labels == ["Alpha", "Beta", "Gamma"]
    sizes = corpus.split(seed=0).sizes()
    assert {key: config[key] for key in sizes} == sizes
    assert sizes["n_train"] + sizes["n_val"] + sizes["n_test"] == len(corpus.pairs)
    assert config["dataset_sha256"] == dataset_checksum(names_dir)
    assert config["versions"]["namelab"] == __version__
    assert config["versions"]["torch"] == torch.__version__
    assert config["weights_sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def test_weights_file_holds_the_returned_model(run) -> None:
    out, result = run
    saved = load_file(out / "model.safetensors")
    state = result.model.state_dict()
    assert set(saved) == set(state)
    for name, tensor in state.items():
        assert torch.equal(saved[name], tensor), name


def test_history_json_has_one_row_per_epoch(run) -> None:
    out, result = run
    history = read(out, "history.json")
    assert isinstance(history, list) and len(history) == EPOCHS
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    for row in history:
        assert HISTORY_KEYS <= set(row)
        assert row["seconds"] >= 0
        assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
        assert math.isfinite(row["val_loss"]) and row["val_loss"] > 0
        assert 0 <= row["train_accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
    assert history == json.loads(json.dumps(result.history))


def test_metrics_json_is_consistent(run, corpus: Corpus) -> None:
    out, result = run
    metrics = read(out, "metrics.json")
    config = read(out, "config.json")
    labels = corpus.labels
    assert metrics["labels"] == labels
    confusion = np.asarray(metrics["confusion"])
    assert confusion.shape == (len(labels), len(labels))
    assert confusion.sum() == config["n_test"] == metrics["n"]
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert set(metrics["per_class"]) == set(labels)
    for i, label in enumerate(labels):
        row = metrics["per_class"][label]
        assert set(row) == {"precision", "recall", "f1", "support"}
        assert row["support"] == confusion[i].sum()
        assert row["recall"] == pytest.approx(confusion[i, i] / confusion[i].sum())
    f1s = [metrics["per_class"][label]["f1"] for label in labels]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1s))


def test_metrics_are_those_of_the_kept_model_on_the_test_split(run, corpus: Corpus) -> None:
    _, result = run
    split = corpus.split(seed=0)
    _, predictions, targets = predict_examples(result.model, split.test, corpus.vocab, torch.device("cpu"))
    expected = classification_metrics(targets, predictions, corpus.labels)
    assert {key: result.metrics[key] for key in expected} == expected
    # Beside them, the calibration measured on the same test split (tests/test_calibrate.py checks the values).
    assert set(result.metrics) - set(expected) == {
        "temperature", "ece_before", "ece_after", "coverage_level", "coverage", "mean_set_size",
        "reliability_before", "reliability",
    }  # fmt: skip


def test_the_test_metrics_are_read_on_the_test_split(corpus: Corpus) -> None:
    # The default split gives validation and test the same size, and on separable names
    # the same perfect scores: a smaller validation set tells the two apart.
    full = corpus.split(seed=0)
    split = Split(full.train, full.val[:3], full.test)
    with one_thread():
        result = train(tiny_config(epochs=1), corpus, None, split=split, log=lambda line: None)
    assert (result.meta["n_val"], result.meta["n_test"]) == (3, len(split.test)) and len(split.test) > 3
    assert result.metrics["n"] == len(split.test)
    _, predictions, targets = predict_examples(result.model, split.test, corpus.vocab, torch.device("cpu"))
    expected = classification_metrics(targets, predictions, corpus.labels)
    assert {key: result.metrics[key] for key in expected} == expected
    assert sum(b["count"] for b in result.metrics["reliability"]) == len(split.test)  # calibration too


def test_the_best_validation_epoch_is_kept(corpus: Corpus, tmp_path: Path) -> None:
    # On separable names every epoch validates at (nearly) 1.0, so a train that kept the
    # last weights would pass unnoticed. Here the last epoch's validation runs on a model
    # whose output rows were rotated (every class answered as another): its accuracy
    # really drops, and the weights kept must be those of the best, earlier epoch.
    epochs = 3
    models: list[CharClassifier] = []
    snapshots: list[dict[str, torch.Tensor]] = []  # the weights each epoch was validated with
    sabotaged: list[bool] = []

    def sabotage_last_validation(module, args) -> None:
        if isinstance(module, CharClassifier):
            models.append(module)
            if len(snapshots) == epochs - 1 and not module.training and not sabotaged:
                sabotaged.append(True)
                with torch.no_grad():
                    module.out.weight.copy_(module.out.weight.roll(1, dims=0))
                    module.out.bias.copy_(module.out.bias.roll(1, dims=0))

    def snapshot(line: str) -> None:  # train logs once per epoch, after validating it
        snapshots.append({k: v.detach().clone() for k, v in models[-1].state_dict().items()})

    hook = torch.nn.modules.module.register_module_forward_pre_hook(sabotage_last_validation)
    try:
        with one_thread():
            result = train(tiny_config(epochs=epochs), corpus, tmp_path / "run", log=snapshot)
    finally:
        hook.remove()
    accuracies = [row["val_accuracy"] for row in result.history]
    assert len(snapshots) == epochs and sabotaged
    assert accuracies[-1] < max(accuracies[:-1]), f"the last epoch did not validate worse: {accuracies}"
    best_epoch = accuracies.index(max(accuracies)) + 1  # the first epoch reaching the best
    assert best_epoch < epochs
    assert result.meta["best_epoch"] == best_epoch
    assert read(tmp_path / "run", "config.json")["best_epoch"] == best_epoch
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for name, tensor in snapshots[best_epoch - 1].items():
        assert torch.equal(result.model.state_dict()[name], tensor), name
        assert torch.equal(saved[name], tensor), name
    assert not torch.equal(result.model.out.weight, snapshots[-1]["out.weight"])
    _, predictions, targets = predict_examples(result.model, corpus.split(0).val, corpus.vocab, torch.device("cpu"))
    assert np.mean(np.asarray(predictions) == np.asarray(targets)) == pytest.approx(max(accuracies))
    assert not result.model.training


def test_training_learns_a_separable_dataset(run) -> None:
    _, result = run
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]
    # One character decides the class; a third of the names would be the chance level.
    assert max(row["val_accuracy"] for row in result.history) >= 0.9
    assert result.metrics["accuracy"] >= 0.8
    assert result.metrics["macro_f1"] >= 0.8


# --- seeding ------------------------------------------------------------------------------


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_seed_same_run_other_seed_other_run(corpus: Corpus) -> None:
    # Dropout on, so the global RNG matters too, not only the initial weights.
    config = tiny_config(epochs=2, dropout=0.3, seed=5)
    first = quiet_train(config, corpus)
    again = quiet_train(config, corpus)
    other = quiet_train(replace(config, seed=6), corpus)
    assert without_seconds(first.history) == without_seconds(again.history)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert without_seconds(first.history) != without_seconds(other.history)
    assert first.meta["dataset_sha256"] is None  # no data_dir given: nothing to fingerprint


def test_the_learning_rate_schedule_steps_once_per_batch(corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    stepped: list[torch.optim.lr_scheduler.OneCycleLR] = []
    step = torch.optim.lr_scheduler.OneCycleLR.step

    def counted(self, *args, **kwargs):
        stepped.append(self)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler.OneCycleLR, "step", counted)
    config = tiny_config(epochs=2, batch_size=8)
    quiet_train(config, corpus)
    train_names = len(corpus.split(seed=config.split_seed).train)
    steps = len(stepped) - 1  # the scheduler's constructor takes one step of its own
    assert steps == stepped[0].total_steps == config.epochs * math.ceil(train_names / config.batch_size)


def test_evaluation_ignores_dropout_and_leaves_the_model_evaluating(corpus: Corpus) -> None:
    model = CharClassifier(ModelConfig(len(corpus.vocab), corpus.num_classes, "lstm", 16, dropout=0.5)).train()
    names = [name for name, _ in corpus.pairs[:40]]
    first = logits_in_order(model, names, corpus.vocab)
    assert torch.equal(first, logits_in_order(model.train(), names, corpus.vocab))  # no dropout mask drawn
    with torch.no_grad():
        alone = torch.stack([model.eval()(*encode_batch([n], corpus.vocab))[0] for n in names])
    torch.testing.assert_close(first, alone)


def seen_in_training(config: TrainConfig, corpus: Corpus) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
    """The weights of the first training step, before any update, and the names of every training batch."""
    first: dict[str, torch.Tensor] = {}
    batches: list[list[int]] = []

    def record(module, args) -> None:
        if isinstance(module, CharClassifier) and module.training:
            first.update({} if first else {k: v.detach().clone() for k, v in module.state_dict().items()})
            batches.append(args[0][:, 0].tolist())  # each name's first character: enough to tell batches apart

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        quiet_train(config, corpus)
    finally:
        hook.remove()
    return first, batches


def test_the_seed_decides_the_initial_weights_and_the_batch_order(corpus: Corpus) -> None:
    config = tiny_config(epochs=2, seed=5)
    weights, order = seen_in_training(config, corpus)
    again_weights, again_order = seen_in_training(config, corpus)
    other_weights, other_order = seen_in_training(replace(config, seed=6), corpus)
    assert order == again_order and all(torch.equal(weights[k], again_weights[k]) for k in weights)
    assert order != other_order
    assert not torch.equal(weights["out.weight"], other_weights["out.weight"])


@pytest.mark.parametrize(("cell", "engine"), [("rnn", "hand"), ("gru", "fused")])
def test_every_cell_and_engine_trains(corpus: Corpus, cell: str, engine: str) -> None:
    result = quiet_train(tiny_config(cell=cell, engine=engine, epochs=1), corpus)
    assert result.model.config.cell == cell and result.model.config.engine == engine
    assert result.meta["config"]["cell"] == cell and len(result.history) == 1


def test_train_logs_one_line_per_epoch(corpus: Corpus) -> None:
    lines: list[str] = []
    quiet_train(tiny_config(epochs=2, cell="rnn"), corpus, log=lines.append)
    assert len(lines) == 2 and "epoch 1/2" in lines[0] and "epoch 2/2" in lines[1]


# --- bad input ----------------------------------------------------------------------------


def test_too_small_dataset_says_so(tmp_path: Path) -> None:
    corpus = Corpus.from_folder(make_names_folder(tmp_path, {"Alpha": ["Abe", "Adams"], "Beta": ["Brown", "Bohm"]}))
    with pytest.raises(ValueError, match="too small"):
        train(tiny_config(), corpus, tmp_path / "run", log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_without_a_gpu_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="--device auto or cpu"):
        resolve_device("cuda")


# --- class weights ------------------------------------------------------------------------


def test_class_weights_favour_rare_classes_and_average_one() -> None:
    from namelab.data.corpus import Example

    examples = [Example("a", 0)] * 90 + [Example("b", 1)] * 10
    weights = class_weights(examples, num_classes=3, power=0.5)
    per_example = weights[torch.tensor([e.label for e in examples])]
    assert per_example.mean().item() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(3.0)  # (90 / 10) ** 0.5
    assert torch.allclose(class_weights(examples, 3, power=0.0)[:2], torch.ones(2))


# --- every option checked in one place ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(hidden_size=0), "--hidden-size must be at least 1, got 0"),
        (dict(batch_size=-3), "--batch-size must be at least 1, got -3"),
        (dict(epochs=0), "--epochs must be at least 1, got 0"),
        (dict(epochs=2.5), "--epochs must be at least 1, got 2.5"),
        (dict(hidden_size=True), "--hidden-size must be at least 1, got True"),
        (dict(seed=-1), "--seed must be at least 0"),
        (dict(lr=0.0), "--lr must be a number above 0"),
        (dict(lr=float("nan")), "--lr must be a number above 0"),
        (dict(weight_decay=-1e-4), "--weight-decay must be a number of at least 0"),
        (dict(dropout=1.0), "--dropout must be a number from 0 up to"),
        (dict(dropout=-0.1), "--dropout must be a number from 0 up to"),
        (dict(label_smoothing=1.5), "--label-smoothing must be"),
        (dict(char_dropout=1.0), "--char-dropout must be"),
        (dict(clip_norm=0), "--clip-norm must be a number above 0"),
        (dict(class_weight_power=float("inf")), "--class-weight-power must be"),
        (dict(cell="transformer"), "--cell must be one of rnn, lstm, gru"),
        (dict(engine="cuda"), "--engine must be one of hand, fused"),
        (dict(device="tpu"), "--device must be one of auto, cpu, cuda"),
        (dict(hidden_size="16"), "--hidden-size must be at least 1, got '16'"),
    ],
)
def test_train_config_refuses_bad_options_with_a_message(change: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        TrainConfig(**change)
    assert message in str(info.value)


def test_a_schedule_of_exactly_ten_steps_trains(corpus: Corpus) -> None:
    # Exactly 10 steps: OneCycleLR's warm-up once divided by zero there.
    n_train = len(corpus.split(seed=0).train)
    result = quiet_train(tiny_config(epochs=1, batch_size=math.ceil(n_train / 10)), corpus)
    assert math.ceil(n_train / math.ceil(n_train / 10)) == 10
    assert len(result.history) == 1 and math.isfinite(result.history[0]["train_loss"])


def test_label_smoothing_and_char_dropout_change_training(corpus: Corpus) -> None:
    plain = quiet_train(tiny_config(epochs=1), corpus)
    smoothed = quiet_train(tiny_config(epochs=1, label_smoothing=0.2), corpus)
    dropped = quiet_train(tiny_config(epochs=1, char_dropout=0.3), corpus)
    weights = lambda r: r.model.out.weight  # noqa: E731
    assert not torch.equal(weights(plain), weights(smoothed))
    assert not torch.equal(weights(plain), weights(dropped))
    assert smoothed.meta["config"]["label_smoothing"] == 0.2 and dropped.meta["config"]["char_dropout"] == 0.3
