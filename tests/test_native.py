"""The C++ LSTM kernel (native.py): chosen by NAMELAB_KERNEL, equal to torch's path, optional.

    .venv/bin/python -m pytest tests/test_native.py -q

tests/test_engine.py and tests/test_model_options.py prove both paths against their
references; here: the setting picks the path, the C++ pass agrees with torch's when a
step's rows are shared between threads, and a kernel that cannot be built leaves the
engine on torch's operators (said once in the log) unless the C++ kernel was demanded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import require_cpp_kernel

from namelab.core import engine, native
from namelab.core.model import CharClassifier, ModelConfig

VOCAB, CLASSES = 9, 4
SRC = Path(__file__).resolve().parents[1] / "src"


def mixed_batch(batch: int, longest: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (batch,), generator=gen)
    lengths[0] = longest
    return torch.randint(1, VOCAB, (batch, longest), generator=gen), lengths


def outputs_and_grads(model: CharClassifier, ids, lengths):
    model.zero_grad(set_to_none=True)
    out = model(ids, lengths)
    (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.fixture
def cpp_kernel() -> native.LstmOps:
    return require_cpp_kernel()


@pytest.fixture
def clean_build_cache():
    """Forget this process's build attempt before and after: a test may fake a failed build."""
    native._loaded.cache_clear()
    yield
    native._loaded.cache_clear()


@pytest.mark.parametrize("setting, expect_cpp", [("torch", False), ("cpp", True), ("auto", True)])
def test_the_setting_picks_the_lstm_path(setting, expect_cpp, cpp_kernel, monkeypatch):
    monkeypatch.setenv(native.ENV_VAR, setting)
    picked = []

    def spy(like):
        ops = native.lstm_ops(like)
        picked.append(ops is not None)
        return ops

    monkeypatch.setattr(engine, "lstm_ops", spy)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, "lstm", 6))
    ids, lengths = mixed_batch(5, 4, seed=0)
    model(ids, lengths).sum().backward()
    assert picked == [expect_cpp, expect_cpp]  # the forward, then the backward
    assert native.lstm_ops(torch.zeros(1, dtype=torch.float16)) is None  # other dtypes: torch's operators


def test_an_unknown_setting_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv(native.ENV_VAR, "fortran")
    with pytest.raises(ValueError, match="NAMELAB_KERNEL='fortran'.*auto, cpp, torch"):
        native.lstm_ops(torch.zeros(1))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("options", [{}, {"bidirectional": True, "pool": "meanmax"}])
def test_cpp_agrees_with_torch_when_threads_share_a_step(dtype, tol, options, cpp_kernel, monkeypatch):
    # 48 rows of 4 * 64 gates: above the kernel's grain (32 rows), so two threads split the early steps.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        model = CharClassifier(ModelConfig(VOCAB, CLASSES, "lstm", 64, **options)).to(dtype)
        ids, lengths = mixed_batch(48, 9, seed=1)
        results = {}
        for setting in ("torch", "cpp"):
            monkeypatch.setenv(native.ENV_VAR, setting)
            results[setting] = outputs_and_grads(model, ids, lengths)
            with torch.inference_mode():  # the inference loop (state updated in place) too
                results[setting + " inference"] = model(ids, lengths)
    finally:
        torch.set_num_threads(threads)
    (torch_out, torch_grads), (cpp_out, cpp_grads) = results["torch"], results["cpp"]
    torch.testing.assert_close(cpp_out, torch_out, rtol=tol, atol=tol)
    torch.testing.assert_close(results["cpp inference"], torch_out, rtol=tol, atol=tol)
    for name, grad in torch_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(cpp_grads[name], grad, rtol=tol, atol=tol, msg=name)


def test_a_kernel_that_cannot_be_built_leaves_torch_in_charge_and_says_so_once(
    clean_build_cache, monkeypatch, caplog
):
    def no_compiler():
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(native, "_build", no_compiler)
    torch.manual_seed(3)
    model = CharClassifier(ModelConfig(VOCAB, CLASSES, "lstm", 6)).double()
    ids, lengths = mixed_batch(6, 5, seed=4)
    monkeypatch.setenv(native.ENV_VAR, "auto")
    with caplog.at_level(logging.WARNING, logger="namelab.core.native"):
        fallback_out, fallback_grads = outputs_and_grads(model, ids, lengths)
        outputs_and_grads(model, ids, lengths)
    said = [record.getMessage() for record in caplog.records if record.name == "namelab.core.native"]
    assert len(said) == 1 and "no C++ compiler found" in said[0] and "torch's operators" in said[0]
    monkeypatch.setenv(native.ENV_VAR, "torch")
    torch_out, torch_grads = outputs_and_grads(model, ids, lengths)
    torch.testing.assert_close(fallback_out, torch_out, rtol=0, atol=0)
    for name, grad in torch_grads.items():
        torch.testing.assert_close(fallback_grads[name], grad, rtol=0, atol=0, msg=name)
    monkeypatch.setenv(native.ENV_VAR, "cpp")  # demanded: an error that says what to do
    with pytest.raises(RuntimeError, match="could not be built: RuntimeError: no C\\+\\+ compiler found.*ninja"):
        model(ids, lengths)


def test_without_ninja_the_build_says_so(clean_build_cache, monkeypatch):
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    monkeypatch.setenv(native.ENV_VAR, "auto")
    assert native.lstm_ops(torch.zeros(1)) is None
    assert "ninja is not installed" in native._loaded()[1]


@pytest.mark.slow
def test_a_fresh_build_from_an_empty_cache(tmp_path, cpp_kernel):
    # A separate process: one process can hold one build of the torch.ops.namelab operators.
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), native.ENV_VAR: "cpp", "PYTHONPATH": str(SRC)}
    code = "import torch; from namelab.core import native; assert native.lstm_ops(torch.zeros(1)) is not None"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert list(tmp_path.glob("*/namelab_lstm_*.so")), "the build left no library in the empty cache"
