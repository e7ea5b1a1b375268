"""The unknown-language scorer's first scoring code, kept as the reference the fast one is held to.

    from unknown_reference import reference_score
    reference_score(scorer, ["Nakamura"])      # equal to scorer.score(["Nakamura"]) within 1e-6

It looks every window up once per language: ``torch.searchsorted`` over the keys
``group * BASE**k + n-gram`` of each order, ``(P, G)`` queries a table. namelab's
``UnknownScorer`` (src/namelab/inference/unknown.py) now looks each distinct window up once
for all languages; tests/test_unknown.py and bench/predict_parts.py compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from namelab.inference.unknown import ALPHABET, BASE, BOUNDARY, UnknownScorer


def _symbol_table() -> torch.Tensor:
    table = torch.full((128,), ALPHABET.index("?") + 1, dtype=torch.int64)
    for i, ch in enumerate(ALPHABET):
        table[ord(ch)] = i + 1
        table[ord(ch.upper())] = i + 1
    return table


def _windows(names: Sequence[str], order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every predicted symbol's window of ``order`` symbols ``(P, order)`` and its name's row ``(P,)``."""
    lengths = torch.tensor([len(name) for name in names], dtype=torch.int64)
    width = int(lengths.max()) if len(names) else 0
    codes = torch.frombuffer(bytearray("".join(names).encode("utf-32-le")), dtype=torch.int32).long()
    ids = _symbol_table()[codes.clamp(max=127)]
    padded = torch.full((len(names), order - 1 + width + 1), BOUNDARY, dtype=torch.int64)
    inside = torch.arange(width)[None, :] < lengths[:, None]
    padded[:, order - 1 : order - 1 + width][inside] = ids
    windows = padded.unfold(1, order, 1)
    valid = torch.arange(width + 1)[None, :] <= lengths[:, None]
    rows = torch.arange(len(names))[:, None].expand(-1, width + 1)
    return windows[valid], rows[valid]


def _keys(windows: torch.Tensor) -> torch.Tensor:
    k = windows.shape[1]
    powers = BASE ** torch.arange(k - 1, -1, -1, dtype=torch.int64)
    return (windows * powers).sum(dim=1)


def _lookup(keys: torch.Tensor, values: torch.Tensor, queries: torch.Tensor, default: float) -> torch.Tensor:
    if keys.numel() == 0:
        return torch.full(queries.shape, default, dtype=values.dtype)
    at = torch.searchsorted(keys, queries).clamp(max=keys.numel() - 1)
    return torch.where(keys[at] == queries, values[at], torch.tensor(default, dtype=values.dtype))


def reference_log_likelihoods(scorer: UnknownScorer, normalized: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per name and group, ``log p_g(name)`` ``(N, G)`` (float64), and the symbols predicted ``(N,)``."""
    names = list(normalized)
    out = torch.zeros(len(names), scorer.groups, dtype=torch.float64)
    windows, rows = _windows(names, scorer.order)
    group = torch.arange(scorer.groups)[None, :]
    prob = torch.full((windows.shape[0], scorer.groups), 1.0 / BASE, dtype=torch.float64)
    for k in range(1, scorer.order + 1):
        ngram = _keys(windows[:, scorer.order - k :])[:, None]
        alpha = _lookup(scorer.tables[f"keys{k}"], scorer.tables[f"alpha{k}"], group * BASE**k + ngram, 0.0)
        gamma = _lookup(
            scorer.tables[f"context_keys{k}"], scorer.tables[f"gamma{k}"], group * BASE ** (k - 1) + ngram // BASE, 1.0
        )
        prob = alpha.double() + gamma.double() * prob
    out.index_add_(0, rows, prob.log())
    return out, torch.bincount(rows, minlength=len(names))


def reference_score(scorer: UnknownScorer, normalized: Sequence[str]) -> torch.Tensor:
    if not len(normalized):
        return torch.empty(0)
    log_likelihoods, counts = reference_log_likelihoods(scorer, normalized)
    return (-log_likelihoods.max(dim=1).values / counts).float()
