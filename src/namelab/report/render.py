"""Write the report: the blocks rendered as Markdown and as one self-contained HTML file.

    summary = json.loads(Path("reports/compare/summary.json").read_text())
    write_report(summary, Path("reports/compare"))   # figures/*.png, report.md, report.html

``report.html`` is one self-contained file: its images are the same PNG bytes as
``figures/*.png``, embedded as base64 data URIs, with inline CSS and no script, so it
opens offline. ``report.md`` links the PNG files. Both are rendered from one list of
blocks (document.py), so they always say the same thing.

On a phone the page never scrolls sideways: each table scrolls inside its own box,
images shrink to the width, long words wrap. Figures are drawn at twice their shown
size (common.DPI) and shown at their 1x size, so they stay sharp on high-density screens.
"""

from __future__ import annotations

import base64
import html
import re
import struct
from pathlib import Path

from ..runs.checkpoint import atomic_write_bytes
from .common import PIXEL_RATIO, VERDICT_COLORS
from .document import make_figures, report_blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")  # GitHub-style tables take <br> for a line break


TAKEAWAYS_TITLE, TOC_TITLE = "Takeaways", "Contents"


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(blocks: list[tuple]) -> list[tuple[str, str]]:
    """``(title, anchor)`` of every h2 and of the takeaways box, in order; a repeated title gets ``-1``, ``-2``."""
    seen: dict[str, int] = {}
    found = []
    for block in blocks:
        if block[0] in ("h2", "takeaways"):
            title = block[1] if block[0] == "h2" else TAKEAWAYS_TITLE
            base = slug(title)
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.append((title, base if count == 0 else f"{base}-{count}"))
    return found


def _toc_entries(blocks: list[tuple]) -> list[tuple[str, str]]:
    """The contents list: every heading after the ("toc",) block."""
    after = blocks.index(("toc",)) if ("toc",) in blocks else 0
    before = len(anchors(blocks[:after]))
    return anchors(blocks)[before:]


def render_markdown(blocks: list[tuple], figure_paths: dict[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "takeaways":
            out.append(f"## {TAKEAWAYS_TITLE}\n\n" + "\n".join(f"> - {sentence}" for sentence in block[1]))
        elif kind == "toc":
            out.append(f"**{TOC_TITLE}**: " + " · ".join(f"[{t}](#{a})" for t, a in _toc_entries(blocks)))
        elif kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{block[1]}]({figure_paths[block[1]]})\n\n*{block[2]}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .55em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2em 0; } img { max-width: 100%; height: auto; } figure img { border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.verdict { font-weight: 600; padding: .1em .45em; border-radius: .3em; color: white; white-space: nowrap; }
.table-wrap { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
.table-wrap table { margin: .5em 0; }
td.long { min-width: 22em; }  /* evidence: on a phone the box scrolls rather than the lines stacking a word deep */
p, li, figcaption, h1, h2, h3 { overflow-wrap: anywhere; }
.takeaways { background: #eef6ee; border: 1px solid #9cc59c; border-radius: .4em; padding: .2em 1.1em .6em;
             margin: 1em 0 1.5em; }
.takeaways h2 { margin-top: .6em; border-bottom: none; }
.takeaways li { margin: .45em 0; }
nav.toc ol { columns: 2 18em; padding-left: 1.4em; } nav.toc li { margin: .15em 0; }
@media (max-width: 600px) { body { margin: 1em auto; } h1 { font-size: 1.35em; } }
"""


def _looks_numeric(text: str) -> bool:
    """Right-align cells that start with a number ("83.12 ± 0.45", "1,234", "2.2e-03 (…)")."""
    first = text.split()[0].replace(",", "") if text.split() else ""
    try:
        float(first)
        return True
    except ValueError:
        return False


def render_html(blocks: list[tuple], figure_png: dict[str, bytes]) -> str:
    esc = html.escape
    body: list[str] = []
    title = next((b[1] for b in blocks if b[0] == "h1"), "namelab report")
    ids = iter(anchor for _, anchor in anchors(blocks))
    for block in blocks:
        kind = block[0]
        if kind == "takeaways":
            items = "".join(f"<li>{esc(sentence)}</li>" for sentence in block[1])
            anchor = esc(next(ids))
            body.append(
                f'<aside class="takeaways" aria-labelledby="{anchor}">'
                f'<h2 id="{anchor}">{TAKEAWAYS_TITLE}</h2><ul>{items}</ul></aside>'
            )
        elif kind == "toc":
            links = "".join(f'<li><a href="#{esc(a)}">{esc(t)}</a></li>' for t, a in _toc_entries(blocks))
            body.append(f'<nav class="toc" aria-label="{TOC_TITLE}"><strong>{TOC_TITLE}</strong><ol>{links}</ol></nav>')
        elif kind == "h2":
            body.append(f'<h2 id="{esc(next(ids))}">{esc(block[1])}</h2>')
        elif kind in ("h1", "h3"):
            body.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            body.append(_html_table(block[1], block[2]))
        elif kind == "figure":
            body.append(_html_figure(block[1], block[2], figure_png[block[1]]))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"
    cells = "".join("<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>" for row in rows)
    # The box scrolls sideways, not the page: wide tables stay readable on a phone.
    return f'<div class="table-wrap"><table><thead>{head}</thead><tbody>{cells}</tbody></table></div>'


def _html_cell(cell: str) -> str:
    """One ``<td>``: evidence one line per comparison, a verdict in its colour, a number right-aligned."""
    esc = html.escape
    if "\n" in cell:
        return '<td class="long">' + "<br>".join(esc(line) for line in cell.split("\n")) + "</td>"
    if cell in VERDICT_COLORS:
        style = f"background:{VERDICT_COLORS[cell]}"
        return f'<td><span class="verdict" style="{style}">{esc(cell)}</span></td>'
    if _looks_numeric(cell):
        return f'<td class="num">{esc(cell)}</td>'
    return f"<td>{esc(cell)}</td>"


def _html_figure(key: str, caption: str, png: bytes) -> str:
    """The PNG inline (the page is one file), drawn at ``PIXEL_RATIO`` times its CSS size: sharp on dense screens."""
    esc = html.escape
    data = base64.b64encode(png).decode("ascii")
    width, height = (size // PIXEL_RATIO for size in png_size(png))
    return (
        f'<figure id="fig-{esc(key)}"><img alt="{esc(caption)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels, from a PNG's header (its IHDR chunk comes first)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", png[16:24])


def write_report(summary: dict, out_dir: Path) -> dict:
    """Write ``figures/*.png``, ``report.md`` and ``report.html`` under ``out_dir``; returns their relative paths."""
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("*.png"):  # figures of models dropped since the last compare
        stale.unlink()
    figures = make_figures(summary)
    paths = {key: f"figures/{key}.png" for key in figures}
    for key, png in figures.items():
        atomic_write_bytes(out_dir / paths[key], png)
    blocks = report_blocks(summary)
    atomic_write_bytes(out_dir / "report.md", render_markdown(blocks, paths).encode("utf-8"))
    atomic_write_bytes(out_dir / "report.html", render_html(blocks, figures).encode("utf-8"))
    return {"figures": paths, "markdown": "report.md", "html": "report.html"}
