"""Session fixtures: the real names folder, a tiny separable one and one tiny trained run per cell.

Built on the plain builders in helpers.py; the runs are trained once per session and
shared by the API tests and the browser test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    REAL_NAMES,
    make_names_folder,
    require_chromium,
    require_cpp_kernel,
    require_real_names,
    separable_names,
    train_tiny_run,
)

# Names made only of their class's letters (see helpers.SEPARABLE_ALPHABETS): every tiny model must get them right.
from namelab.core import native
from namelab.inference.load import load_predictor

KNOWN_NAMES = {"Aeiou": "Alpha", "Bdkgt": "Beta", "Lmnrs": "Gamma"}


@pytest.fixture(params=["torch", "cpp"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each LSTM engine path in turn (native.py): torch's operators, then the C++ kernel.

    The C++ run skips, with the build's error, where the kernel cannot be built here (fails under CI).
    """
    monkeypatch.setenv(native.ENV_VAR, request.param)
    if request.param == "cpp":
        require_cpp_kernel()
    return request.param


@pytest.fixture(scope="session")
def chromium() -> None:
    """For the browser tests: skips where Chromium, chromedriver or selenium is missing (fails under CI).

    Session-scoped, so it is checked before the module fixtures that start a browser.
    """
    require_chromium()


@pytest.fixture(scope="session")
def known_names() -> dict[str, str]:
    """``{name: language}`` that every tiny run predicts (checked when they are trained)."""
    return dict(KNOWN_NAMES)


@pytest.fixture(scope="session")
def real_names() -> Path:
    """The official names folder (NAMELAB_DATA): the test skips where it is missing, and fails in CI."""
    return require_real_names(REAL_NAMES)


@pytest.fixture(scope="session")
def tiny_names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_names_folder(tmp_path_factory.mktemp("tiny-names"), separable_names(per_class=20))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_names_dir: Path) -> dict[str, Path]:
    """One trained run folder per cell, ``{"rnn": .../rnn-seed0, "lstm": ..., "gru": ...}``."""
    root = tmp_path_factory.mktemp("tiny-runs")
    threads = torch.get_num_threads()
    # 16-unit matrices on a shared 2-core machine: a second thread only adds contention (~5x slower).
    torch.set_num_threads(1)
    try:
        runs = {}
        for cell in ("rnn", "lstm", "gru"):
            runs[cell] = root / f"{cell}-seed0"
            train_tiny_run(tiny_names_dir, runs[cell], cell=cell, epochs=6)
    finally:
        torch.set_num_threads(threads)
    for cell, run_dir in runs.items():
        rows = load_predictor(run_dir).predict(list(KNOWN_NAMES), top_k=1)
        predicted = {row["name"]: row["predictions"][0]["language"] for row in rows}
        assert predicted == KNOWN_NAMES, f"the tiny {cell} did not learn the separable names: {predicted}"
    return runs
