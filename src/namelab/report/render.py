"""Write the report: the blocks rendered as Markdown and as one self-contained HTML file.

    summary = json.loads(Path("reports/compare/summary.json").read_text())
    write_report(summary, Path("reports/compare"))   # figures/*.png, report.md, report.html

``report.html`` is one self-contained file: its images are the same PNG bytes as
``figures/*.png``, embedded as base64 data URIs, with inline CSS and no script, so it
opens offline. ``report.md`` links the PNG files. Both are rendered from one list of
blocks (document.py), so they always say the same thing.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ..runs.checkpoint import atomic_write_bytes
from .common import VERDICT_COLORS
from .document import make_figures, report_blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")  # GitHub-style tables take <br> for a line break


def render_markdown(blocks: list[tuple], figure_paths: dict[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
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
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.verdict { font-weight: 600; padding: .1em .45em; border-radius: .3em; color: white; white-space: nowrap; }
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
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            cells = []
            for row in rows:
                tds = []
                for cell in row:
                    if "\n" in cell:  # evidence: one line per comparison
                        tds.append("<td>" + "<br>".join(esc(line) for line in cell.split("\n")) + "</td>")
                    elif cell in VERDICT_COLORS:
                        style = f"background:{VERDICT_COLORS[cell]}"
                        tds.append(f'<td><span class="verdict" style="{style}">{esc(cell)}</span></td>')
                    elif _looks_numeric(cell):
                        tds.append(f'<td class="num">{esc(cell)}</td>')
                    else:
                        tds.append(f"<td>{esc(cell)}</td>")
                cells.append("<tr>" + "".join(tds) + "</tr>")
            head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
            body.append(f"<table><thead>{head}</thead><tbody>{''.join(cells)}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(figure_png[block[1]]).decode("ascii")
            body.append(
                f'<figure id="fig-{esc(block[1])}"><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block[2])}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


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
