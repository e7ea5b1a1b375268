"""Shared builders for the core tests: tiny fake names folders and one tiny trained run.

    from helpers import make_names_folder, separable_names, train_tiny_run

    folder = make_names_folder(tmp_path / "names", {"Alpha": ["Abe", "Adams"], "Beta": ["Bohm", "Brown"]})
    result = train_tiny_run(folder, tmp_path / "run")   # hidden 16, 2 epochs, cpu

Plain functions rather than fixtures, so any test module (and conftest.py, if one is
written later) can wrap them in a fixture of the scope it needs. The test files import
this module as ``helpers`` because pytest puts ``tests/`` on ``sys.path`` (rootdir
layout without ``__init__.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
import torch

from namelab.core import native
from namelab.data.corpus import Corpus, Split
from namelab.inference import calibrate, ensemble, evaluate, ngram
from namelab.runs.config import TrainConfig
from namelab.train import loop
from namelab.train.loop import TrainResult, train

# The real dataset is never copied into the repo: tests read it where NAMELAB_DATA points
# (.ci/run sets it). Where it is missing they skip, saying why, except in CI (CI=true),
# where a real-data test that cannot run must fail the run rather than pass it silently.
REAL_NAMES = Path(os.environ.get("NAMELAB_DATA") or "/nonexistent/NAMELAB_DATA-unset")

# For a test (or a module, through ``pytestmark``) that reads REAL_NAMES: conftest's
# ``real_names`` fixture checks the folder first (see :func:`require_real_names`).
requires_real_data = pytest.mark.usefixtures("real_names")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail_in_ci(what: str, reason: str) -> NoReturn:
    """Skip the test with ``reason``; under CI (CI=true/1/yes) fail it instead, saying why.

    The one rule for tests that need something the machine may lack (the real data,
    Chromium, a C++ compiler): a developer's laptop may go without, a CI run must not pass
    silently without them. A missing CUDA device is no such thing: those tests skip everywhere.
    """
    if in_ci():
        pytest.fail(f"CI={os.environ['CI']} and {what} cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def require_real_names(folder: Path) -> Path:
    """``folder`` if it holds the 18 official files; else skip the test, or fail it when CI=true."""
    count = len(list(folder.glob("*.txt"))) if folder.is_dir() else 0
    if count == 18:
        return folder
    where = f"{folder} holds {count} .txt files" if os.environ.get("NAMELAB_DATA") else "NAMELAB_DATA is unset"
    reason = f"{where}; set NAMELAB_DATA to the official names folder (18 files) to run the real-data tests"
    skip_or_fail_in_ci("the real-data tests", reason)


def require_cpp_kernel():
    """The C++ LSTM kernel's ops; where it cannot be built, skip (fail under CI) with the build's error."""
    ops, error = native._loaded()
    if ops is None:
        skip_or_fail_in_ci("the C++ LSTM kernel tests", f"the C++ LSTM kernel cannot be built here ({error})")
    return ops


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_chromium() -> None:
    """Debian's Chromium, its driver and selenium; where one is missing, skip (fail under CI) saying which."""
    for path, package in ((CHROMIUM, "chromium chromium-driver"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.is_file() and os.access(path, os.X_OK)):
            skip_or_fail_in_ci("the browser tests", f"no executable {path} (Debian: apt-get install {package})")
    if importlib.util.find_spec("selenium") is None:
        skip_or_fail_in_ci("the browser tests", "selenium is not installed (pip install selenium)")

# Each class draws its letters from its own alphabet, so one character decides the class:
# a model that learns anything at all reaches (near) perfect accuracy on them.
SEPARABLE_ALPHABETS = {"Alpha": "aeiou", "Beta": "bdgkt", "Gamma": "lmnrs"}


def make_names_folder(
    folder: Path,
    names: dict[str, list[str]],
    *,
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    """Write ``<Language>.txt`` files, one name per line, into ``folder`` and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for language, rows in names.items():
        (folder / f"{language}.txt").write_bytes("".join(row + newline for row in rows).encode(encoding))
    return folder


def separable_names(per_class: int = 20, seed: int = 0) -> dict[str, list[str]]:
    """``per_class`` distinct capitalized names per class of :data:`SEPARABLE_ALPHABETS`, lengths 3-7."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for language, alphabet in SEPARABLE_ALPHABETS.items():
        names: set[str] = set()
        while len(names) < per_class:
            names.add("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 7))).capitalize())
        out[language] = sorted(names)
    return out


def tiny_config(**overrides) -> TrainConfig:
    """A config small enough for a test on a shared CPU: hidden 16, 2 epochs, batches of 8.

    The learning rate is high because a few dozen names give only a few dozen steps.
    """
    settings = dict(
        cell="lstm", hidden_size=16, epochs=2, batch_size=8, lr=0.03, dropout=0.0, device="cpu", seed=0
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous count.

    With 16-unit matrices a second thread only adds synchronisation, and on a shared
    2-core machine it makes a tiny training several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_tiny_run(data_dir: Path, out_dir: Path | None, **overrides) -> TrainResult:
    """Train :func:`tiny_config` on the folder ``data_dir`` and write the run to ``out_dir`` (if given)."""
    corpus = Corpus.from_folder(data_dir)
    with one_thread():
        return train(tiny_config(**overrides), corpus, out_dir, data_dir=Path(data_dir), log=lambda line: None)


REPO = Path(__file__).resolve().parents[1]


def load_bench(script: str, module: str | None = None):
    """Import ``bench/<script>.py`` (the benchmarks are scripts, not a package) as ``module``."""
    module = module or script
    spec = importlib.util.spec_from_file_location(module, REPO / "bench" / f"{script}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(loaded)
    return loaded


def trained_run_folder(tmp_path_factory: pytest.TempPathFactory, model: str, epochs: int) -> Path:
    """A tiny run of ``model`` on separable names, in a fresh temporary folder (for module-scoped fixtures)."""
    folder = make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))
    out = tmp_path_factory.mktemp("runs") / model
    train_tiny_run(folder, out, cell=model, epochs=epochs)
    return out


# -- the test-split guard ------------------------------------------------------------------


class HeldOutRead(AssertionError):
    """The test split's names were read outside the final evaluation."""


@functools.cache  # the originals' code, taken before any test puts a spy in their place
def _evaluator_codes() -> dict:
    """The code objects allowed to read the test split: the final evaluations, nothing that fits."""
    scored = next(c for c in calibrate.calibrate_predictor.__code__.co_consts if getattr(c, "co_name", "") == "scored")
    return {
        loop.predict_examples.__code__: "predict_examples",  # the run's test metrics
        scored: "calibration",  # calibrate_predictor scoring a split (its val half is what fit_temperature gets)
        evaluate.evaluate_examples.__code__: "evaluate_examples",  # n-gram and ensemble test metrics
    }


@functools.cache
def _fitting_codes() -> dict:
    """Code objects that fit something: while one runs, the test split must not be read, whoever reads it."""
    return {
        loop.train_epoch.__code__: "train_epoch",
        loop.validate.__code__: "validate",  # the best epoch is chosen on validation
        loop.class_weights.__code__: "class_weights",
        ngram.NgramModel.fit.__func__.__code__: "NgramModel.fit",
        ensemble.fit_weight.__code__: "fit_weight",
        calibrate.fit_temperature.__code__: "fit_temperature",
        calibrate.calibrate_scores.__code__: "calibrate_scores",
    }


class SealedExamples(Sequence):
    """A split's examples that raise :class:`HeldOutRead` when read outside an allowed evaluation.

    Not a list on purpose: ``split.train + split.test`` fails instead of copying it unseen.
    ``len()`` is allowed (run folders record the split's sizes). ``reads`` lists, in
    order, each evaluation call that read it; ``violations`` every refused read (kept
    even if the code under test swallows the exception).
    """

    def __init__(self, examples: Sequence):
        self._examples = list(examples)
        self._allowed = _evaluator_codes()
        self._fitting = _fitting_codes()
        self._last_frame = None
        self.reads: list[str] = []
        self.violations: list[str] = []

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index):
        self._check()
        return self._examples[index]

    def __iter__(self):
        self._check()
        return iter(self._examples)

    def _check(self) -> None:
        frame = sys._getframe(2)
        stack = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        fitting = [self._fitting[f.f_code] for f in stack if f.f_code in self._fitting]
        evaluator = next((f for f in stack if f.f_code in self._allowed), None)
        if fitting or evaluator is None:
            where = " > ".join(f"{f.f_code.co_name} ({Path(f.f_code.co_filename).name}:{f.f_lineno})" for f in stack[:4])
            why = f"inside {fitting[0]}" if fitting else "outside the final evaluation"
            self.violations.append(f"{why}: {where}")
            raise HeldOutRead(f"the test split was read {why}: {where}")
        if evaluator is not self._last_frame:  # one entry per evaluation call, however many passes it makes
            self._last_frame = evaluator
            self.reads.append(self._allowed[evaluator.f_code])


def sealed_split(split, val_size: int | None = None):
    """A copy of ``split`` whose test examples are :class:`SealedExamples` (and validation cut to ``val_size``).

    A validation split of another size than test lets a spy tell the two apart.
    """
    val = split.val if val_size is None else split.val[:val_size]
    return Split(list(split.train), list(val), SealedExamples(split.test))
