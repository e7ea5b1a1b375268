"""What every section of the report shares: the palette, number formats, matplotlib helpers, tables.

    fig, ax = new_figure(6.4, 4.0)
    png = png_bytes(fig)

Figures are drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot, so no
global figure state).
"""

from __future__ import annotations

import io
from typing import Iterable

import numpy as np

from ..core.cells import CELLS

MODEL_TITLES = {name: cell.title for name, cell in CELLS.items()}


# One colour per model in every figure (Okabe–Ito palette, readable with colour blindness).
MODEL_COLORS = {name: cell.color for name, cell in CELLS.items()}


_SPARE_COLORS = ("#CC79A7", "#E69F00", "#56B4E9", "#000000")


VERDICT_COLORS = {"supported": "#1b7837", "not supported": "#b2182b", "inconclusive": "#8c6d1f"}


# Figures are drawn at twice the resolution they are shown at (110 dots per inch shown),
# so they stay sharp on high-density screens and when zoomed; the HTML shows each at half
# its pixel size. Tick labels and legends are never smaller than MIN_FONT_PT.
PIXEL_RATIO = 2
DPI = 110 * PIXEL_RATIO
MIN_FONT_PT = 9


def model_title(model: str) -> str:
    return MODEL_TITLES.get(model, model.upper())


def model_color(model: str, models: list[str]) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    others = [m for m in models if m not in MODEL_COLORS]
    return _SPARE_COLORS[others.index(model) % len(_SPARE_COLORS)]


def fmt_mean_std(stats: dict, scale: float = 1.0, digits: int = 2) -> str:
    """``"83.12 ± 0.45"`` from a :func:`namelab.experiment.stats.describe` dict (no ± with one value)."""
    if stats.get("mean") is None:
        return "n/a"
    text = f"{stats['mean'] * scale:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std'] * scale:.{digits}f}"
    return text


def pct(value: float, digits: int = 2) -> str:
    return f"{value * 100:.{digits}f}"


def new_figure(width: float, height: float, ncols: int = 1, **kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, **kwargs)[0]
    return fig, axes


def legible(fig) -> None:
    """Raise every tick label and legend text of ``fig`` below :data:`MIN_FONT_PT` to it."""
    for ax in fig.axes:
        texts = [*ax.get_xticklabels(which="both"), *ax.get_yticklabels(which="both")]
        legend = ax.get_legend()
        texts += [*legend.get_texts()] if legend is not None else []
        for text in texts:
            if text.get_fontsize() < MIN_FONT_PT:
                text.set_fontsize(MIN_FONT_PT)


def png_bytes(fig) -> bytes:
    legible(fig)
    buffer = io.BytesIO()
    # No "Software" text chunk: the file then carries no web address of any kind.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def band(ax, x, stats: dict, color: str, style: str, label: str, scale: float = 1.0) -> None:
    mean = np.asarray(stats["mean"]) * scale
    ax.plot(x, mean, style, color=color, label=label, linewidth=2, marker="o" if len(x) < 12 else None, markersize=3)
    low, high = np.asarray(stats["min"]) * scale, np.asarray(stats["max"]) * scale
    if np.any(high > low):
        ax.fill_between(x, low, high, color=color, alpha=0.18 if style == "-" else 0.10, linewidth=0)


def integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def seeds_note(summary: dict) -> str:
    n = len(summary["seeds"])
    return f"mean over {n} seeds, band = min–max" if n > 1 else "one seed"


def suites_of(summary: dict) -> list[str]:
    """The suites a summary holds (a summary written before suites existed holds the seed experiment)."""
    return summary.get("suites", ["seed"])


def table(headers: list[str], rows: Iterable[Iterable]) -> tuple:
    return ("table", headers, [[str(cell) for cell in row] for row in rows])


def difference_text(first: str, second: str, pair: dict, scale: float, unit: str, digits: int,
                    verdict: str = "") -> str:
    """``LSTM − GRU: +1.20 points, std 0.40, t = 5.2, 3/3 seeds in favour → holds``."""
    if pair["mean"] is None:
        return f"{first} vs {second}: {pair['reason']}"
    if not verdict:
        verdict = {"a": "holds", "b": "reversed", "noise": f"within the noise ({pair['reason']})"}[pair["outcome"]]
    difference = f"{round(pair['mean'] * scale, digits) + 0.0:+,.{digits}f}{unit}"  # + 0.0: no "-0.00"
    if pair["reason"] == "exact quantity":
        return f"{first} − {second}: {difference} → {verdict} (exact)"
    parts = [difference]
    if pair["std"] is not None:
        parts.append(f"std {pair['std'] * scale:.{digits}f}")
    if pair["t"] is not None:
        parts.append(f"t = {pair['t']:.1f}")
    parts.append(f"{pair['positive']}/{pair['n']} seeds in favour")
    return f"{first} − {second}: {', '.join(parts)} → {verdict}"


def fmt_stats(stats: dict | None, scale: float = 100.0, digits: int = 2) -> str:
    if not stats:
        return "n/a"
    text = f"{stats['mean'] * scale:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std'] * scale:.{digits}f}"
    return text


def ratio_text(stats: dict) -> str:
    if stats["mean"] is None:
        return "n/a"
    if stats["std"] is None:
        return f"{stats['mean']:.2g}"
    return f"{stats['mean']:.2g} ({stats['min']:.2g}–{stats['max']:.2g})"
