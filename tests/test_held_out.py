"""Nothing is fitted on the test split: a guard on the split, and spies on what each fit receives.

    PYTHONPATH=src .venv/bin/python -m pytest tests/test_held_out.py -q

The test split is handed over sealed (helpers.SealedExamples): reading its names anywhere
but in a final evaluation, or inside anything that fits (an epoch, validation, class
weights, the n-gram's C, the ensemble's weights, a temperature), raises. The spies then
check that each fit got the validation (or train) examples and not the test ones; the
validation split is cut to another size than test so the two cannot be confused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import HeldOutRead, one_thread, sealed_split, tiny_config

from namelab.data.corpus import Corpus
from namelab.inference import calibrate as calibrate_module
from namelab.inference import ngram as ngram_module
from namelab.train import loop as loop_module
from namelab.train import presets as presets_module
from namelab.train.loop import train
from namelab.train.ngram import train_ngram
from namelab.train.presets import train_ensemble

VAL_SIZE = 4  # the tiny corpus's validation and test splits hold 6 names each: 4 tells them apart


@pytest.fixture(scope="module")
def corpus(tiny_names_dir: Path) -> Corpus:
    return Corpus.from_folder(tiny_names_dir)


def spy(monkeypatch: pytest.MonkeyPatch, module, name: str, calls: list):
    """Replace ``module.name`` by a wrapper that records its arguments in ``calls`` and calls the original."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Spies on every fit that must see validation (or train) data, never test."""
    calls: dict[str, list] = {name: [] for name in ("class_weights", "fit_temperature", "ngram_c", "fit_weight")}
    spy(monkeypatch, loop_module, "class_weights", calls["class_weights"])
    spy(monkeypatch, calibrate_module, "fit_temperature", calls["fit_temperature"])
    # NgramModel.fit scores each C with classification_metrics on the split it chooses on.
    spy(monkeypatch, ngram_module, "classification_metrics", calls["ngram_c"])
    spy(monkeypatch, presets_module, "fit_weight", calls["fit_weight"])
    # A few validation names keep T = 1 (calibrate.MIN_TEMPERATURE_NAMES); fit it anyway, to watch it.
    monkeypatch.setattr(calibrate_module, "MIN_TEMPERATURE_NAMES", 1)
    return calls


def labels_of(examples) -> list[int]:
    return [e.label for e in examples]


def test_the_guard_refuses_a_read_outside_the_final_evaluation(corpus: Corpus):
    split = sealed_split(corpus.split(seed=0))
    assert len(split.test) == 6 and split.sizes()["n_test"] == 6  # counting is not reading
    with pytest.raises(HeldOutRead, match="outside the final evaluation"):
        [e.name for e in split.test]
    with pytest.raises(TypeError):
        split.train + split.test  # not a list: a concatenation cannot copy it unseen
    with pytest.raises(HeldOutRead, match="inside class_weights"):
        loop_module.class_weights(split.test, corpus.num_classes, 0.5)
    with pytest.raises(HeldOutRead, match="inside validate"):
        model = loop_module.build_model(tiny_config(), len(corpus.vocab), corpus.num_classes)
        loop_module.validate(model, split.test, corpus.vocab, torch.device("cpu"))
    assert len(split.test.violations) == 3 and split.test.reads == []


def test_training_reads_the_test_split_only_in_its_final_evaluation(corpus: Corpus, fits):
    split = sealed_split(corpus.split(seed=0), VAL_SIZE)
    with one_thread():
        result = train(tiny_config(epochs=2), corpus, None, split=split, log=lambda line: None)
    assert split.test.violations == []
    # Read twice, after training: the kept model's test metrics, then its calibration figures.
    assert split.test.reads == ["predict_examples", "calibration"]
    assert result.metrics["n"] == len(split.test)
    # Class weights are counted on the train split alone.
    [(args, _)] = fits["class_weights"]
    assert list(args[0]) == split.train
    # The temperature is fitted on the validation names (VAL_SIZE of them), not on test's 6.
    [((logits, targets), _)] = fits["fit_temperature"]
    assert logits.shape[0] == VAL_SIZE and targets.tolist() == labels_of(split.val)


def test_the_ngram_baseline_chooses_c_and_temperature_on_validation(corpus: Corpus, fits, tmp_path: Path):
    split = sealed_split(corpus.split(seed=0), VAL_SIZE)
    train_ngram(split, corpus.labels, tmp_path / "ngram", c_grid=(1.0, 10.0))
    assert split.test.violations == []
    assert split.test.reads == ["calibration", "evaluate_examples"]
    assert len(fits["ngram_c"]) == 2  # one score per C of the grid
    for (true, predicted, _labels), _ in fits["ngram_c"]:
        assert list(true) == labels_of(split.val) and len(predicted) == VAL_SIZE
    [((logits, targets), _)] = fits["fit_temperature"]
    assert logits.shape[0] == VAL_SIZE and targets.tolist() == labels_of(split.val)


def test_an_ensemble_fits_weights_and_temperatures_on_validation(corpus: Corpus, fits, tmp_path: Path):
    split = sealed_split(corpus.split(seed=0), VAL_SIZE)
    with one_thread():
        train_ensemble(
            [tiny_config(cell="gru", epochs=2)], corpus, tmp_path / "ens", split=split, c_grid=(10.0,),
            log=lambda line: None,
        )  # fmt: skip
    assert split.test.violations == []
    # The member's training, the n-gram member, then the ensemble: each evaluates on test once, last.
    assert split.test.reads == [
        "predict_examples", "calibration", "calibration", "evaluate_examples", "calibration", "evaluate_examples",
    ]  # fmt: skip
    [((probs, targets), _)] = fits["fit_weight"]
    assert targets.tolist() == labels_of(split.val) and all(p.shape[0] == VAL_SIZE for p in probs)
    assert len(fits["fit_temperature"]) == 3  # the recurrent member, the n-gram member, the ensemble
    for (logits, targets), _ in fits["fit_temperature"]:
        assert logits.shape[0] == VAL_SIZE and targets.tolist() == labels_of(split.val)
    for (args, _) in fits["class_weights"]:
        assert list(args[0]) == split.train
