"""A recurrent run folder as one ONNX graph: ids and lengths in, calibrated probabilities out.

    export_onnx("runs/lstm", "lstm.onnx")            # any recurrent run: every cell and option
    session = onnxruntime.InferenceSession("lstm.onnx")
    ids, lengths = encode_batch([normalize(n) for n in names], Vocab(meta["vocab"]))
    probs, logits = session.run(None, {"ids": ids.numpy(), "lengths": lengths.numpy()})

The graph takes what :func:`namelab.data.encode_batch` gives: ``ids`` int64 ``(B, T)``
right-padded with 0 and ``lengths`` int64 ``(B,)``, both dimensions free. It returns
``probabilities`` ``(B, C)``, calibrated with the run's temperature (the same numbers
as ``Predictor.probabilities``, within 1e-5: tests/test_export.py), and the raw
``logits`` ``(B, C)``. The file's metadata_props carry what a user needs to encode
names and read the answer (``labels``, ``vocab``, ``encoding``, ``temperature``, the
model's options, the namelab version); :func:`onnx_metadata` reads them back.

The graph is written node by node with ``onnx.helper``, not traced through torch's
exporters: both work on torch 2.13 for a plain ``nn.GRU``, but the TorchScript one is
deprecated (it warns on every call) and the torch.export one took 17 s for an 8-unit
GRU and warns too; neither lets the model say where each name ends. ONNX's own
``RNN``/``LSTM``/``GRU`` operators take ``sequence_lens``: the forward direction's
``Y_h`` is the state after each name's last real character, and the reverse
direction starts there, so a bidirectional model needs no reversing of padded rows.
The time loop stays inside one operator, so the length stays dynamic.

The n-gram baseline and ensembles are not exported: see :func:`export_onnx`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..core.model import HASH_MULTIPLIER, NGRAM_ORDERS, CharClassifier, ModelConfig
from ..data.corpus import PAD_ID, UNKNOWN, UNKNOWN_ID, Vocab
from ..runs.checkpoint import atomic_write_bytes, load_run, run_kind
from ..version import __version__

OPSET = 18  # BitwiseAnd and ReduceMax with axes as an input

# ONNX orders the gates differently from torch (and cells.py): rows of torch's layout for each ONNX gate.
_GATE_ORDER = {
    "rnn": (0,),
    "lstm": (0, 3, 1, 2),  # torch i, f, g, o -> ONNX i, o, f, c
    "gru": (1, 0, 2),  # torch r, z, n -> ONNX z, r, h
}
_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def export_onnx(run_dir: Path | str, out_path: Path | str) -> Path:
    """Write the ONNX graph of the recurrent run in ``run_dir`` to ``out_path``; returns the path.

    Raises ``CheckpointError`` for a folder that is not a complete run, and ``ValueError``
    for an n-gram baseline or an ensemble folder: the baseline's features are strings of
    scikit-learn's ``char_wb`` analyzer, and an ensemble is its members plus a weighted
    mean, so export each recurrent member on its own and mix their probabilities with
    the weights of the ensemble's config.json (and its temperature on the log of the mix).
    """

    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind != "recurrent":
        raise ValueError(
            f"{run_dir} holds {'an' if kind == 'ensemble' else 'a'} {kind} run; only recurrent runs export to ONNX. "
            "For an ensemble, export each recurrent member folder (members/...) and average their probabilities "
            "with the weights in its config.json; the n-gram baseline has no ONNX form"
        )

    model, meta = load_run(run_dir)
    temperature = float((meta.get("calibration") or {}).get("temperature", 1.0))
    graph = build_graph(model, temperature, name=run_dir.name or "namelab")
    metadata = {
        "labels": json.dumps(meta["labels"]),
        "vocab": meta["vocab"],
        "encoding": json.dumps(encoding(Vocab(meta["vocab"]))),
        "temperature": repr(temperature),
        "model": json.dumps({k: v for k, v in vars(model.config).items() if k != "engine"}),
        "namelab_version": _version(),
        "source_run": str(run_dir.resolve()),
    }
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    out_path = Path(out_path)
    atomic_write_bytes(out_path, graph.SerializeToString())
    return out_path


def onnx_metadata(path: Path | str) -> dict:
    """The metadata_props of an exported file, JSON fields decoded (labels, encoding, model, temperature)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    for key in ("labels", "encoding", "model"):
        if key in props:
            props[key] = json.loads(props[key])
    if "temperature" in props:
        props["temperature"] = float(props["temperature"])
    return props


def encoding(vocab: Vocab) -> dict:
    """How to turn a normalized name into ``ids`` without namelab: stored in the file's metadata."""
    return {
        "normalize": "namelab.data.normalize: NFD without marks, anyascii transliteration, one space between words, "
        f"every other character outside the vocabulary becomes {UNKNOWN!r}",
        "padding_id": PAD_ID,
        "unknown_id": UNKNOWN_ID,
        "symbols": vocab.symbols,  # symbols[i] has id i + 1
        "caseless": not any(ch.isupper() for ch in vocab.chars),  # capitals read as their small letter
        "ids": "right-padded int64 (batch, time) and int64 lengths (batch,), as namelab.data.encode_batch gives",
    }


def _version() -> str:

    return __version__


class _Graph:
    """Collects nodes and initializers; each helper returns its output's name."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.count = [], [], 0

    def const(self, array, name: str | None = None) -> str:
        self.count += 1
        name = name or f"c{self.count}"
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs):
        self.count += 1
        stem = f"{op_type.lower()}{self.count}"
        names = [name or stem] if outputs == 1 else [f"{stem}_{k}" for k in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _f32(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


def _i64(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _onnx_weights(model: CharClassifier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W (D, G*H, I)``, ``R (D, G*H, H)``, ``B (D, 2*G*H)`` in ONNX's gate order, one slice per direction."""
    fused = model.recurrent_weights()
    directions = ("", "_reverse") if model.config.bidirectional else ("",)
    order, H = _GATE_ORDER[model.config.cell], model.config.hidden_size

    def gates(tensor: torch.Tensor) -> np.ndarray:
        blocks = tensor.detach().split(H, dim=0)
        return _f32(torch.cat([blocks[k] for k in order], dim=0))

    W = np.stack([gates(fused[f"weight_ih{d}"]) for d in directions])
    R = np.stack([gates(fused[f"weight_hh{d}"]) for d in directions])
    B = np.stack([np.concatenate([gates(fused[f"bias_ih{d}"]), gates(fused[f"bias_hh{d}"])]) for d in directions])
    return W, R, B


def build_graph(model: CharClassifier, temperature: float = 1.0, name: str = "namelab"):
    """The ONNX ``ModelProto`` of ``model`` (either engine), probabilities at ``temperature``."""
    from onnx import TensorProto, checker, helper

    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    g = _Graph()
    Y, Y_h = _recurrent_layer(g, model)
    features = _pooled_features(g, model.config, Y, Y_h)
    out_weight, out_bias = g.const(_f32(model.out.weight), "out_weight"), g.const(_f32(model.out.bias), "out_bias")
    logits = g.op("Gemm", features, out_weight, out_bias, transB=1)
    if model.config.ngram_buckets:
        logits = g.op("Add", logits, _ngram_logits(g, model))
    logits = g.op("Identity", logits, name="logits")
    scaled = g.op("Div", logits, g.const(np.float32(temperature), "temperature"))
    g.op("Softmax", scaled, axis=1, name="probabilities")
    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", model.config.num_classes]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", model.config.num_classes]),
        ],
        initializer=g.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="namelab")
    proto.ir_version = 8  # readable by every onnxruntime since 1.10
    checker.check_model(proto)
    return proto


def _recurrent_layer(g: _Graph, model: CharClassifier) -> tuple[str, str]:
    """The cell's whole time loop as ONNX's own RNN/LSTM/GRU operator: ``Y (T, D, B, H)`` and ``Y_h (D, B, H)``."""
    from onnx import TensorProto

    config = model.config
    H, V = config.hidden_size, config.vocab_size
    directions = 2 if config.bidirectional else 1
    lengths_i32 = g.op("Cast", "lengths", to=TensorProto.INT32)
    # What the cell reads at each step, time-major (T, B, I): a row of the embedding, or of
    # the identity for one-hot characters.
    table = _f32(model.embed.weight) if config.embedding_dim else np.eye(V, dtype=np.float32)
    inputs = g.op("Gather", g.const(table, "input_table"), g.op("Transpose", "ids", perm=[1, 0]))
    W, R, B = _onnx_weights(model)
    rnn_attrs = {"hidden_size": H, "direction": "bidirectional" if config.bidirectional else "forward"}
    if config.cell == "gru":
        rnn_attrs["linear_before_reset"] = 1  # torch applies r after W_hn h + b_hn
    if config.cell == "rnn":
        rnn_attrs["activations"] = ["Tanh"] * directions
    Y, Y_h = g.op(
        _OP[config.cell],
        inputs,
        g.const(W, "W"),
        g.const(R, "R"),
        g.const(B, "B"),
        lengths_i32,
        outputs=3 if config.cell == "lstm" else 2,
        **rnn_attrs,
    )[:2]
    return Y, Y_h


def _pooled_features(g: _Graph, config: ModelConfig, Y: str, Y_h: str) -> str:
    """What the output layer reads, ``(B, D*H)`` (``(B, 2*D*H)`` for meanmax): ``config.pool`` over the real steps."""
    from onnx import TensorProto

    batch_dims = g.const(_i64(0, -1))
    if config.pool == "last":
        # Y_h (D, B, H): forward after each name's last character; reverse after its first.
        return g.op("Reshape", g.op("Transpose", Y_h, perm=[1, 0, 2]), batch_dims)
    states = g.op("Reshape", g.op("Transpose", Y, perm=[2, 0, 1, 3]), g.const(_i64(0, 0, -1)))  # (B, T, D*H)
    width = g.op("Gather", g.op("Shape", "ids"), g.const(np.asarray(1, dtype=np.int64)))
    steps = g.op("Range", g.const(np.asarray(0, dtype=np.int64)), width, g.const(np.asarray(1, dtype=np.int64)))
    lengths_col = g.op("Unsqueeze", "lengths", g.const(_i64(1)))  # (B, 1)
    mask = g.op("Unsqueeze", g.op("Less", steps, lengths_col), g.const(_i64(2)))  # (B, T, 1)
    parts = []
    if config.pool in ("mean", "meanmax"):
        total = g.op("ReduceSum", g.op("Where", mask, states, g.const(np.float32(0))), g.const(_i64(1)), keepdims=0)
        parts.append(g.op("Div", total, g.op("Cast", lengths_col, to=TensorProto.FLOAT)))
    if config.pool in ("max", "meanmax"):
        masked = g.op("Where", mask, states, g.const(np.float32(-np.inf)))
        parts.append(g.op("ReduceMax", masked, g.const(_i64(1)), keepdims=0))
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)


def _ngram_logits(g: _Graph, model: CharClassifier) -> str:
    """model.ngram_bag and NgramChannel restated in ONNX integer ops: the channel's logits ``(B, C)``."""
    from onnx import TensorProto

    V, buckets = model.config.vocab_size, model.config.ngram_buckets
    base = V + 2
    longest = max(NGRAM_ORDERS)
    if (longest + 1) * base**longest * HASH_MULTIPLIER >= 2**63:
        raise ValueError(f"a vocabulary of {V} symbols overflows the n-gram hash's int64 keys; no ONNX form")

    def scalar(value, dtype=np.int64) -> str:
        return g.const(np.asarray(value, dtype=dtype))

    batch = g.op("Slice", g.op("Shape", "ids"), g.const(_i64(0)), g.const(_i64(1)))  # (1,)
    edge = g.op("Concat", batch, g.const(_i64(1)), axis=0)  # (B, 1) as a shape
    start = g.op("Expand", scalar(V), edge)
    framed = g.op("Concat", start, "ids", g.op("Expand", scalar(0), edge), axis=1)  # (B, T + 2)
    framed_width = g.op("Gather", g.op("Shape", framed), scalar(1))
    steps = g.op("Range", scalar(0), framed_width, scalar(1))  # (T + 2,)
    lengths_col = g.op("Unsqueeze", "lengths", g.const(_i64(1)))  # (B, 1)
    is_end = g.op("Equal", steps, g.op("Add", lengths_col, scalar(1)))
    framed = g.op("Where", is_end, scalar(V + 1), framed)
    limit = g.op("Add", lengths_col, scalar(2))
    big = np.iinfo(np.int64).max
    indices, valid = [], []
    for n in NGRAM_ORDERS:
        # The n-grams start at 0 .. T + 2 - n: slice k of the key ends n - 1 - k before the end.
        key = None
        for k in range(n):
            end = -(n - 1 - k) if n - 1 - k else big
            part = g.op("Slice", framed, g.const(_i64(k)), g.const(_i64(end)), g.const(_i64(1)))
            key = g.op("Add", g.op("Mul", scalar(n) if key is None else key, scalar(base)), part)
        mixed = g.op("BitwiseAnd", g.op("Mul", key, scalar(HASH_MULTIPLIER)), scalar(0xFFFFFFFF))
        indices.append(g.op("Div", g.op("Mul", mixed, scalar(buckets)), scalar(2**32)))  # >> 32 of a non-negative
        starts = g.op("Slice", steps, g.const(_i64(0)), g.const(_i64(-(n - 1) if n > 1 else big)), g.const(_i64(0)))
        valid.append(g.op("LessOrEqual", g.op("Add", starts, scalar(n)), limit))
    index, mask = g.op("Concat", *indices, axis=1), g.op("Concat", *valid, axis=1)  # (B, K)
    index = g.op("Where", mask, index, scalar(buckets))
    counts = g.op("Sub", g.op("Mul", limit, scalar(len(NGRAM_ORDERS))), scalar(sum(range(len(NGRAM_ORDERS)))))
    inv_sqrt = g.op("Reciprocal", g.op("Sqrt", g.op("Cast", counts, to=TensorProto.FLOAT)))  # (B, 1)
    weights = g.op("Mul", g.op("Cast", mask, to=TensorProto.FLOAT), inv_sqrt)  # (B, K)
    rows = g.op("Gather", g.const(_f32(model.ngram.table.weight), "ngram_table"), index)  # (B, K, C)
    weighted = g.op("Mul", rows, g.op("Unsqueeze", weights, g.const(_i64(2))))
    return g.op("ReduceSum", weighted, g.const(_i64(1)), keepdims=0)

