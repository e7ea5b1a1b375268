"""The optional C++ kernel for the LSTM step's elementwise work, built on first use.

    NAMELAB_KERNEL=auto  namelab train ...   # default: the C++ kernel if it builds, else torch
    NAMELAB_KERNEL=cpp   pytest tests/test_engine.py   # the C++ kernel or a clear error
    NAMELAB_KERNEL=torch namelab train ...   # torch's operators only

engine.py's LSTM asks :func:`lstm_ops` for the kernel before each time loop. The source
(csrc/lstm_step.cpp) is compiled with ``torch.utils.cpp_extension.load`` the first time
an LSTM runs on a CPU tensor (about 10 s; it needs a C++ compiler and ninja), cached under
torch's extensions folder (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``)
and loaded from there afterwards. When it cannot be built (no compiler, no ninja, a build
error) the engine runs torch's operators instead, the same equations, and says why once
in the ``namelab.core.native`` log. Tensors on other devices, or of other dtypes than float32
and float64, always take torch's operators.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

ENV_VAR = "NAMELAB_KERNEL"
CHOICES = ("auto", "cpp", "torch")
SOURCE = Path(__file__).with_name("csrc") / "lstm_step.cpp"
# -ffast-math lets gcc call glibc's vector expf/tanhf (see the source); -march=native
# because the build happens on the machine that runs it; on AVX-512 CPUs gcc keeps to
# 256-bit vectors unless told otherwise, and 512 bits halved the gate math's time
# (docs/benchmarks.md).
CFLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp")
LDFLAGS = ("-fopenmp",)  # libgomp.so.1: the one torch has already loaded, so one thread pool

_log = logging.getLogger(__name__)


def kernel_choice() -> str:
    """``NAMELAB_KERNEL``: "auto" (the default), "cpp" or "torch"."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{ENV_VAR}={choice!r} is not a kernel; choose one of {', '.join(CHOICES)}")
    return choice


class LstmOps:
    """The compiled step functions (``torch.ops.namelab``); see csrc/lstm_step.cpp."""

    def __init__(self, ops) -> None:
        self.forward_step = ops.lstm_forward_step  # (gates, c_prev | None, c, tanh_c, h)
        self.backward_step = ops.lstm_backward_step  # (gates, tanh_c, c_prev | None, dh, step_grad | None, dc, dgates)


def lstm_ops(like: torch.Tensor) -> LstmOps | None:
    """The C++ LSTM step for tensors like ``like``, or None where torch's operators run it.

    Raises ``RuntimeError`` if ``NAMELAB_KERNEL=cpp`` and the kernel cannot be built.
    """
    choice = kernel_choice()
    if choice == "torch" or like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64):
        return None
    ops, error = _loaded()
    if ops is None and choice == "cpp":
        raise RuntimeError(
            f"{ENV_VAR}=cpp, but the C++ LSTM kernel could not be built: {error}. Install a C++ compiler "
            f"and ninja (pip install ninja), or set {ENV_VAR}=auto to fall back to torch's operators"
        )
    return ops


@functools.cache
def _loaded() -> tuple[LstmOps | None, str | None]:
    """Build (or load the cached build of) the kernel once per process; the reason if it failed."""
    try:
        return LstmOps(_build()), None
    except Exception as error:  # any failure to build means: run torch's operators
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        _log.warning("the C++ LSTM kernel is unavailable (%s); the LSTM runs on torch's operators", reason)
        _log.debug("C++ LSTM kernel build failure", exc_info=True)
        return None, reason


def _build():
    from torch.utils import cpp_extension  # imports setuptools: only when a build is needed

    if not SOURCE.is_file():
        raise FileNotFoundError(f"{SOURCE} is missing from the installed package")
    started = time.perf_counter()
    with _ninja_on_path(cpp_extension), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not cpp_extension.is_ninja_available():
            raise RuntimeError("ninja is not installed")
        cpp_extension.load(
            name=f"namelab_lstm_{_machine_tag()}",
            sources=[str(SOURCE)],
            extra_cflags=list(CFLAGS),  # fresh lists: torch appends to them, and that would change
            extra_ldflags=list(LDFLAGS),  # the build's hash and so load a second copy next time
            is_python_module=False,
            verbose=False,
        )
    for warning in caught:  # torch's compiler checks warn; pytest would turn a warning into an error
        _log.info("while building the C++ LSTM kernel: %s", warning.message)
    _log.info("C++ LSTM kernel ready in %.1f s", time.perf_counter() - started)
    return torch.ops.namelab


@contextmanager
def _ninja_on_path(cpp_extension):
    """Put the ``ninja`` Python package's binary on PATH while building, if PATH has none.

    ``pip install ninja`` puts it in the environment's bin folder, which is not on PATH
    when the environment's python is run without being activated.
    """
    saved = os.environ.get("PATH", "")
    folders = [str(Path(sys.executable).parent)]
    try:
        import ninja  # type: ignore[import-not-found]

        folders.insert(0, ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    if shutil.which("ninja") is None:
        os.environ["PATH"] = os.pathsep.join([*folders, saved])
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def _machine_tag() -> str:
    """A short digest of the CPU's features: a -march=native build never loads on another CPU."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "model name")):
                flags += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return hashlib.sha256(f"{flags}{sys.platform}".encode()).hexdigest()[:10]
