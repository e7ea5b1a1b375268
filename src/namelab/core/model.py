"""CharClassifier: one-hot characters in, logits over the languages out.

One model, two engines that compute the same function with the same weights::

    model = CharClassifier(ModelConfig(vocab_size=56, num_classes=18, cell="lstm", engine="hand"))
    logits = model(ids, lengths)             # ids (B, T) int64 padded, lengths (B,)
    fused = model.with_engine("fused")       # same weights, torch's nn.LSTM runs them
    model = CharClassifier(ModelConfig(vocab_size=56, num_classes=18, cell="gru"))

``hand`` runs namelab's own cells (cells.py); ``fused`` runs torch's
``nn.RNN``/``nn.LSTM``/``nn.GRU``. By default (the seed experiment's model) the output
layer reads the hidden state at each name's last real character, so padding never
changes a result. The accuracy options (``ModelConfig``) add a second cell reading
right to left (``bidirectional``), pooling over every real step (``pool``) and a
learned character embedding (``embedding_dim``); tests/test_model_options.py proves
each equal between the engines and against torch's layers run name by name.

The hand engine has two paths that compute the same function: ``hidden_states``
steps ``cell.step`` under autograd and keeps every step (for the gradient probe and
as the reference), while ``forward``/``last_hidden`` run engine.py's packed time
loop with a hand-written backward, many times faster (tests/test_engine.py proves
the two equal, gradients included).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .cells import cell_class
from .engine import check_batch, padded_rows, run_cell, run_cell_states

ENGINES = ("hand", "fused")
OPTIONS = ("bidirectional", "pool", "embedding_dim", "ngram_buckets")  # ModelConfig fields beyond the seed experiment's
POOLS = ("last", "mean", "max", "meanmax")
# The four recurrent tensors under engine-neutral names (torch's own names).
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a CharClassifier's shape: the one way to build one.

    The defaults are the seed experiment's model (one-hot input, one cell reading left
    to right, the output layer on the last state); the other fields are the accuracy
    options, each proven equal between the two engines by tests/test_model_options.py.
    """

    vocab_size: int
    num_classes: int
    cell: str = "lstm"
    hidden_size: int = 256
    engine: str = "hand"
    dropout: float = 0.0
    bidirectional: bool = False  # a second cell of the same kind reads the name right to left
    pool: str = "last"  # what the output layer reads: last | mean | max | meanmax over the real steps
    embedding_dim: int = 0  # 0: one-hot characters; else a learned embedding of this size
    ngram_buckets: int = 0  # 0: none; else a character n-gram channel hashed into this many buckets

    def __post_init__(self) -> None:
        cell_class(self.cell)
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}; choose one of {', '.join(POOLS)}")
        if self.embedding_dim < 0:
            raise ValueError(f"embedding_dim must be 0 (one-hot) or positive, got {self.embedding_dim}")
        if self.ngram_buckets < 0:
            raise ValueError(f"ngram_buckets must be 0 (no n-gram channel) or positive, got {self.ngram_buckets}")

    @classmethod
    def from_run_config(cls, config: Mapping, vocab_size: int, num_classes: int) -> "ModelConfig":
        """The model of a run's training config (``asdict(TrainConfig)``, as config.json stores it).

        Every run has written the fields of the seed experiment's model, so a missing one
        means a damaged file (KeyError); the accuracy options came later, so a run without
        them loads as it was trained. (Folders that name the cell ``model`` and the engine
        ``impl`` are read through ``runs.config.config_from_dict``.)
        """
        return cls(
            vocab_size=vocab_size,
            num_classes=num_classes,
            cell=config["cell"],
            hidden_size=config["hidden_size"],
            engine=config["engine"],
            dropout=config["dropout"],
            **{name: config[name] for name in OPTIONS if name in config},
        )

    @property
    def is_seed_shape(self) -> bool:
        """The seed experiment's recurrent part: one-hot, one direction, last state."""
        return not self.bidirectional and self.pool == "last" and self.embedding_dim == 0

    @property
    def features(self) -> int:
        """Width of what the output layer reads."""
        return self.hidden_size * (2 if self.bidirectional else 1) * (2 if self.pool == "meanmax" else 1)


def reverse_within(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each name of ``ids (B, T)`` read right to left within its length; padding stays past the end."""
    steps = torch.arange(ids.shape[1], device=ids.device)
    index = (lengths.to(ids.device)[:, None] - 1 - steps).clamp(min=0)  # (B, T)
    return ids.gather(1, index)


def pool_steps(states: torch.Tensor, lengths: torch.Tensor, pool: str) -> torch.Tensor:
    """``states (B, T, F)`` pooled over each name's real steps (padding never counts): ``(B, F)`` or ``(B, 2F)``."""
    mask = (torch.arange(states.shape[1], device=states.device) < lengths.to(states.device)[:, None]).unsqueeze(2)
    parts = []
    if pool in ("mean", "meanmax"):
        parts.append(states.masked_fill(~mask, 0.0).sum(1) / lengths.to(states.device, states.dtype)[:, None])
    if pool in ("max", "meanmax"):
        parts.append(states.masked_fill(~mask, float("-inf")).amax(1))
    return torch.cat(parts, dim=1)


NGRAM_ORDERS = (1, 2, 3, 4)
HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: its high bits mix every bit of the key


def ngram_bag(ids: torch.Tensor, lengths: torch.Tensor, vocab_size: int, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The hashed character n-grams of each name: bucket indices and weights, both ``(B, K)``.

    Every 1- to 4-gram of the name framed by a start and an end mark (``^ab$`` gives
    ``^ a b $ ^a ab b$ ^ab ab$ ^ab$``) is hashed into one of ``buckets`` rows; padding
    gets row ``buckets`` and weight 0. Each real n-gram weighs ``1 / sqrt(count)`` (the
    name's bag at unit length, as the n-gram baseline's TF-IDF rows are). Pure integer
    arithmetic on ``ids``: the same buckets on every machine and in every process.
    """
    lengths = lengths.to(ids.device)
    batch, width = ids.shape
    base = vocab_size + 2  # the characters, the start mark and the end mark
    steps = torch.arange(width + 2, device=ids.device)
    framed = torch.cat([ids.new_full((batch, 1), vocab_size), ids, ids.new_zeros(batch, 1)], dim=1)
    framed = torch.where(steps == lengths[:, None] + 1, vocab_size + 1, framed)  # (B, T + 2)
    indices, valid = [], []
    for n in NGRAM_ORDERS:
        starts = width + 3 - n
        key = framed.new_full((batch, starts), n)  # the order leads the key: "a" and "^a" differ
        for k in range(n):
            key = key * base + framed[:, k : k + starts]
        mixed = (key * HASH_MULTIPLIER) & 0xFFFFFFFF
        indices.append((mixed * buckets) >> 32)
        valid.append(steps[:starts] + n <= lengths[:, None] + 2)
    index, mask = torch.cat(indices, dim=1), torch.cat(valid, dim=1)
    counts = (lengths + 2) * len(NGRAM_ORDERS) - sum(range(len(NGRAM_ORDERS)))  # n-grams in the framed name
    weights = mask / counts.to(torch.get_default_dtype())[:, None].sqrt()
    return index.masked_fill(~mask, buckets), weights


class NgramChannel(nn.Module):
    """A linear model on the name's hashed character n-grams; its logits join the recurrent part's.

    The wide half of a wide-and-deep classifier: the n-gram baseline's evidence (whole
    1- to 4-grams, weighed at once) learned jointly with the recurrent model, inside one
    model and one run folder. Starts at zero, so training begins from the recurrent model.
    """

    def __init__(self, vocab_size: int, num_classes: int, buckets: int):
        super().__init__()
        self.vocab_size, self.buckets = vocab_size, buckets
        self.table = nn.EmbeddingBag(buckets + 1, num_classes, mode="sum", padding_idx=buckets)
        nn.init.zeros_(self.table.weight)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        index, weights = ngram_bag(ids, lengths, self.vocab_size, self.buckets)
        return self.table(index, per_sample_weights=weights.to(self.table.weight.dtype))


class CharClassifier(nn.Module):
    """Ids and lengths of a padded batch in, logits over the languages out; built from one config.

    The recurrent part runs on the hand engine (``self.cell``, with ``self.cell_reverse``
    for the second direction) or the fused one (``self.rnn``: torch's nn.LSTM/GRU/RNN).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        cell_type = cell_class(config.cell)
        input_size = config.embedding_dim or config.vocab_size
        if config.embedding_dim:
            self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        if config.engine == "hand":
            self.cell = cell_type(input_size, config.hidden_size)
            if config.bidirectional:
                self.cell_reverse = cell_type(input_size, config.hidden_size)
        else:
            self.rnn = cell_type.fused(
                input_size, config.hidden_size, batch_first=True, bidirectional=config.bidirectional
            )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.features, config.num_classes)
        if config.ngram_buckets:
            self.ngram = NgramChannel(config.vocab_size, config.num_classes, config.ngram_buckets)

    def hidden_states(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states at every step, ``(B, T, H)``, padding steps included (seed-shaped models)."""
        check_batch(ids, lengths)
        if not self.config.is_seed_shape:
            raise ValueError("hidden_states steps the seed experiment's model only (one-hot, one direction)")
        if self.config.engine == "fused":
            one_hot = F.one_hot(ids, self.config.vocab_size).to(self.out.weight.dtype)  # (B, T, V)
            outputs, _ = self.rnn(one_hot)
            return outputs
        cell = self.cell
        # one_hot(ids) @ W_ih^T is row ids of W_ih^T: project every step at once.
        xw = F.embedding(ids, cell.x2h.weight.t()) + cell.x2h.bias  # (B, T, G*H)
        state = cell.init_state(ids.shape[0], device=ids.device, dtype=xw.dtype)
        outputs = []
        for t in range(ids.shape[1]):
            state = cell.step(xw[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)

    def last_hidden(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden state after each name's last real character, ``(B, H)`` (seed-shaped models)."""
        if self.config.engine == "hand" and self.config.is_seed_shape:
            return run_cell(self.cell, ids, lengths)
        outputs = self.hidden_states(ids, lengths)
        rows = torch.arange(ids.shape[0], device=ids.device)
        return outputs[rows, lengths.to(ids.device) - 1]

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What the output layer reads, ``(B, config.features)``."""
        if self.config.is_seed_shape:
            return self.last_hidden(ids, lengths)
        if self.config.engine == "fused":
            return self._fused_features(ids, lengths)
        check_batch(ids, lengths)
        directions = [(self.cell, ids)]
        if self.config.bidirectional:
            directions.append((self.cell_reverse, reverse_within(ids, lengths)))
        if self.config.pool == "last":
            # A right-to-left cell's last state has read the whole name, first character last.
            return torch.cat([run_cell(c, x, lengths, self._input_weight(c)) for c, x in directions], dim=1)
        padded = []
        for c, x in directions:
            states, plan = run_cell_states(c, x, lengths, self._input_weight(c))  # (N, H) packed
            rows = padded_rows(plan)  # (B, T'), N past each name's end
            table = torch.cat([states, states.new_zeros(1, states.shape[1])])
            padded.append(table.index_select(0, rows.reshape(-1)).view(*rows.shape, -1))  # (B, T', H)
        # Pooling ignores the order of the steps, so the reversed states need no realigning.
        return pool_steps(torch.cat(padded, dim=2), lengths, self.config.pool)

    def _input_weight(self, cell) -> torch.Tensor | None:
        """``W_ih`` applied to the embedding of every character, ``(G*H, V)``: the engine's lookup table."""
        if not self.config.embedding_dim:
            return None
        return cell.x2h.weight @ self.embed.weight.t()

    def _fused_features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_batch(ids, lengths)
        if self.config.embedding_dim:
            inputs = self.embed(ids)
        else:
            inputs = F.one_hot(ids, self.config.vocab_size).to(self.out.weight.dtype)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)
        if self.config.pool == "last":
            h_n = final[0] if isinstance(final, tuple) else final  # (directions, B, H)
            return torch.cat(list(h_n), dim=1)
        padded, _ = pad_packed_sequence(outputs, batch_first=True)  # (B, T', directions * H)
        return pool_steps(padded, lengths, self.config.pool)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits over the classes, ``(B, C)``: the loss and the probabilities normalize them once."""
        h = self.dropout(self.features(ids, lengths))
        logits = self.out(h)
        if self.config.ngram_buckets:
            logits = logits + self.ngram(ids, lengths)
        return logits

    # -- moving weights between engines -------------------------------------------------

    def recurrent_weights(self) -> dict[str, torch.Tensor]:
        """The recurrent tensors under torch's names (``_reverse`` for the second direction)."""
        suffixes = ("", "_reverse") if self.config.bidirectional else ("",)
        if self.config.engine == "fused":
            return {f"{name}{s}": getattr(self.rnn, f"{name}_l0{s}") for s in suffixes for name in WEIGHT_NAMES}
        weights = {}
        for suffix, cell in zip(suffixes, (self.cell, getattr(self, "cell_reverse", None))):
            weights.update(
                {
                    f"weight_ih{suffix}": cell.x2h.weight,
                    f"weight_hh{suffix}": cell.h2h.weight,
                    f"bias_ih{suffix}": cell.x2h.bias,
                    f"bias_hh{suffix}": cell.h2h.bias,
                }
            )
        return weights

    def with_impl(self, impl: str) -> "CharClassifier":
        """The former name of :meth:`with_engine`."""
        warnings.warn("CharClassifier.with_impl is now with_engine", DeprecationWarning, stacklevel=2)
        return self.with_engine(impl)

    def with_engine(self, engine: str) -> "CharClassifier":
        """A copy of this model run by the other engine, with the same weights."""
        weight = self.out.weight
        other = CharClassifier(replace(self.config, engine=engine)).to(weight.device, weight.dtype)
        with torch.no_grad():
            for name, tensor in other.recurrent_weights().items():
                tensor.copy_(self.recurrent_weights()[name])
            other.out.load_state_dict(self.out.state_dict())
            if self.config.embedding_dim:
                other.embed.load_state_dict(self.embed.state_dict())
            if self.config.ngram_buckets:
                other.ngram.load_state_dict(self.ngram.state_dict())
        other.train(self.training)
        return other

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
