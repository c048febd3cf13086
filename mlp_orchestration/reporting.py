"""Self-contained HTML reports: tables and inline SVG charts, no JavaScript or external files.

Reports are written next to the stores under ``$MLP_HOME/reports`` and linked from Dagster
asset metadata, so a reader opens them straight from the UI.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:left;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}.muted{color:#666}
"""


def escape(value: Any) -> str:
    return html.escape(str(value))


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell_html(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell_html(cell: Any) -> str:
    if isinstance(cell, Verdict):
        return cell.html()
    return escape(format_value(cell))


class Verdict:
    """A pass/fail cell rendered in colour."""

    def __init__(self, passed: bool, text: str | None = None) -> None:
        self.passed = passed
        self.text = text or ("passed" if passed else "FAILED")

    def html(self) -> str:
        css = "pass" if self.passed else "fail"
        return f'<span class="{css}">{escape(self.text)}</span>'


def key_values(pairs: Mapping[str, Any]) -> str:
    return table(["", ""], [(k, v) for k, v in pairs.items()])


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 320,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An SVG line chart of named (x, y) series."""
    pad_left, pad_bottom, pad_top, pad_right = 56, 40, 12, 140
    all_x = [x for xs, _ in series.values() for x in xs]
    all_y = [y for _, ys in series.values() for y in ys]
    x0, x1 = x_range or (min(all_x, default=0.0), max(all_x, default=1.0))
    y0, y1 = y_range or (min(all_y, default=0.0), max(all_y, default=1.0))
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0
    plot_w = width - pad_left - pad_right
    plot_h = height - pad_top - pad_bottom

    def sx(x: float) -> float:
        return pad_left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return pad_top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(y_label)} by {escape(x_label)}">',
        f'<rect x="{pad_left}" y="{pad_top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    for i in range(5):
        fx = x0 + (x1 - x0) * i / 4
        fy = y0 + (y1 - y0) * i / 4
        parts.append(
            f'<text x="{sx(fx):.1f}" y="{height - pad_bottom + 16}" font-size="11" '
            f'text-anchor="middle">{fx:.3g}</text>'
        )
        parts.append(
            f'<text x="{pad_left - 6}" y="{sy(fy) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{fy:.3g}</text>'
        )
    parts.append(
        f'<text x="{pad_left + plot_w / 2}" y="{height - 6}" font-size="12" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{pad_top + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {pad_top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for index, (name, (xs, ys)) in enumerate(series.items()):
        colour = _PALETTE[index % len(_PALETTE)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        legend_y = pad_top + 16 + index * 18
        parts.append(
            f'<rect x="{width - pad_right + 12}" y="{legend_y - 9}" width="12" '
            f'height="4" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{width - pad_right + 30}" y="{legend_y - 4}" font-size="12">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def page(title: str, sections: Sequence[tuple[str, str]], *, subtitle: str = "") -> str:
    """A complete HTML document from (heading, inner HTML) sections."""
    body = "".join(f"<h2>{escape(heading)}</h2>{inner}" for heading, inner in sections)
    sub = f'<p class="muted">{escape(subtitle)}</p>' if subtitle else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{sub}{body}"
        "</body></html>"
    )


def write_report(path: Path, document: str) -> Path:
    """Write a report atomically, so a reader never opens a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(document)
    os.replace(temporary, path)
    return path
