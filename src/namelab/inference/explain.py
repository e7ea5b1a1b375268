"""Which characters pushed a name towards its top language: occlusion.

    from namelab.inference.explain import occlusion_variants, read_occlusion

    normalized = ["Nakamura"]
    probs = predictor.probabilities(occlusion_variants(normalized))   # one batched pass
    read_occlusion(probs, normalized, predictor.labels)
    # [{"language": "Japanese", "probability": 0.98, "characters": [{"char": "N", "drop": 0.01}, ...]}]

Each character is replaced, in turn, by the unknown symbol, and the drop in the top
language's probability is that character's weight. The variants of many names go
through one forward pass, so a server can batch them with its other work.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data.corpus import UNKNOWN


def occlusion_variants(normalized: Sequence[str]) -> list[str]:
    """Each name followed by its copies with one character replaced by the unknown symbol."""
    variants: list[str] = []
    for name in normalized:
        variants.append(name)
        variants.extend(name[:i] + UNKNOWN + name[i + 1 :] for i in range(len(name)))
    return variants


def variant_starts(normalized: Sequence[str]) -> list[int]:
    """The row of each name itself among :func:`occlusion_variants` (its copies follow it)."""
    starts = [0]
    for name in normalized[:-1]:
        starts.append(starts[-1] + 1 + len(name))
    return starts[: len(normalized)]


def read_occlusion(probs: torch.Tensor, normalized: Sequence[str], labels: Sequence[str]) -> list[dict]:
    """Which characters pushed each name towards its top language.

    ``probs`` are a model's probabilities of :func:`occlusion_variants`. For every
    character: the drop in the top language's probability when that character is replaced
    by the unknown symbol (positive: it supported the top language; negative: it pulled
    away from it). Replacing rather than deleting keeps every other character in place.
    """
    out, row = [], 0
    for name in normalized:
        top = int(probs[row].argmax())
        p_top = float(probs[row, top])
        drops = (p_top - probs[row + 1 : row + 1 + len(name), top]).tolist()
        out.append(
            {
                "language": labels[top],
                "probability": round(p_top, 6),
                "characters": [{"char": ch, "drop": round(d, 6)} for ch, d in zip(name, drops)],
            }
        )
        row += 1 + len(name)
    return out
