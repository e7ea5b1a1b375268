"""What runs a recurrent model's forward pass for a Predictor: torch, or onnxruntime.

    backend = make_backend(model, vocab, "onnx")         # "torch" | "onnx" | "auto"
    logits = backend.scores(["nakamura", "schmidt"])     # (N, C) float32, in input order

Both backends take already normalized names and give the model's logits in input
order, the contract of ``Predictor.scores``; a Predictor only swaps which one it calls.
``onnx`` builds the model's graph in memory (export.build_graph, the graph that
export_onnx writes, proven equal to torch within 1e-5 by tests/test_export.py) and
runs it with onnxruntime on ``threads`` threads. ``auto`` picks ``onnx`` for an LSTM
on the CPU where onnxruntime is installed (where it measured faster), else ``torch``.

Both batch names by length (sorted, so a batch holds little padding) and score each
distinct name once: tables of real names repeat a lot, and a repeat costs a dict lookup.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.model import CharClassifier
from ..data.corpus import Vocab, encode_batch

BACKENDS = ("torch", "onnx", "auto")


def distinct(normalized: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct names, shortest first, and the row of each input name among them."""
    first = dict.fromkeys(normalized)
    unique = sorted(first, key=len)
    row = {name: i for i, name in enumerate(unique)}
    return unique, np.fromiter((row[name] for name in normalized), dtype=np.int64, count=len(normalized))


@torch.inference_mode()
def logits_in_order(model: CharClassifier, normalized: Sequence[str], vocab: Vocab, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(N, C)`` (float32, on the CPU) of already normalized names, in input order.

    The one prediction path: names are batched by length (little padding), and every
    row is put back where its name was.
    """
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(normalized)), key=lambda i: len(normalized[i]))
    out = torch.empty(len(normalized), model.config.num_classes)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, lengths = encode_batch([normalized[i] for i in rows], vocab)
        out[rows] = model(ids.to(device), lengths.to(device)).float().cpu()
    return out


class TorchBackend:
    """The model itself (either engine) under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model, vocab: Vocab):
        self.model, self.vocab = model.eval(), vocab

    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        unique, rows = distinct(normalized)
        logits = logits_in_order(self.model, unique, self.vocab, batch_size)
        return logits[torch.from_numpy(rows)]


class OnnxBackend:
    """The model's ONNX graph on onnxruntime: what ``namelab export`` writes, run in memory."""

    name = "onnx"

    def __init__(self, model_bytes: bytes, vocab: Vocab, num_classes: int, threads: int = 2):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.vocab, self.num_classes = vocab, num_classes

    @classmethod
    def from_model(cls, model, vocab: Vocab, threads: int = 2) -> "OnnxBackend":
        from .export import build_graph  # onnx is imported only by those who run it

        return cls(build_graph(model).SerializeToString(), vocab, model.config.num_classes, threads)

    def scores(self, normalized: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        unique, rows = distinct(normalized)
        out = np.empty((len(unique), self.num_classes), dtype=np.float32)
        for start in range(0, len(unique), batch_size):
            ids, lengths = encode_batch(unique[start : start + batch_size], self.vocab)
            feed = {"ids": ids.numpy(), "lengths": lengths.numpy()}
            out[start : start + batch_size] = self.session.run(["logits"], feed)[0]
        return torch.from_numpy(out[rows])


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_backend(model, vocab: Vocab, backend: str = "torch", threads: int | None = None):
    """The backend named ``backend`` (see :data:`BACKENDS`) for ``model``; ``threads`` for onnxruntime."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    on_cpu = next(model.parameters()).device.type == "cpu"
    if backend == "auto":
        # Measured (bench/speed.py --backends): onnxruntime's LSTM beats the hand engine, above
        # all for one name; its GRU and bidirectional GRU are several times slower, so they stay on torch.
        backend = "onnx" if on_cpu and model.config.cell == "lstm" and onnx_available() else "torch"
    if backend == "torch":
        return TorchBackend(model, vocab)
    if not on_cpu:
        raise ValueError("the onnx backend runs on the CPU; load the model with device='cpu' or use backend='torch'")
    if not onnx_available():
        raise ValueError("the onnx backend needs onnx and onnxruntime (pip install onnx onnxruntime); or use 'torch'")
    return OnnxBackend.from_model(model, vocab, threads or min(2, torch.get_num_threads()))
