"""The shadow evaluation as a self-contained HTML page: tables and an inline SVG histogram."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlp_orchestration.rollout.shadow import ShadowGate, ShadowSummary
from mlp_orchestration.settings import Settings

# Fraud scores span several orders of magnitude, so the histogram uses log10(score) bins.
_LOG_FLOOR = -6.0
_BINS = 48
_WIDTH, _HEIGHT, _PAD = 720, 280, 44
_COLOURS = {"champion": "#1f77b4", "challenger": "#d62728"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.passed { color: #18794e; font-weight: bold; } .failed { color: #c62828; font-weight: bold; }
.insufficient { color: #8a6d00; font-weight: bold; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(
        f'<th class="text">{html.escape(h)}</th>' if i == 0 else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{_fmt(c)}</td>' if i == 0 else f"<td>{_fmt(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _shares(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    logs = np.log10(np.clip(scores, 10**_LOG_FLOOR, 1.0))
    counts, _ = np.histogram(logs, bins=edges)
    return counts / max(1, scores.size)


def score_histogram_svg(
    champion: np.ndarray, challenger: np.ndarray, thresholds: dict[str, float]
) -> str:
    """Draw both score distributions as step lines over log10(score), with the thresholds."""
    edges = np.linspace(_LOG_FLOOR, 0.0, _BINS + 1)
    series = {"champion": _shares(champion, edges), "challenger": _shares(challenger, edges)}
    top = max(float(max(s.max(initial=0.0) for s in series.values())), 1e-9)
    plot_w, plot_h = _WIDTH - 2 * _PAD, _HEIGHT - 2 * _PAD

    def x(value: float) -> float:
        return _PAD + (value - _LOG_FLOOR) / -_LOG_FLOOR * plot_w

    def y(share: float) -> float:
        return _PAD + plot_h - share / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="score distributions">',
        f'<rect x="{_PAD}" y="{_PAD}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    for tick in range(int(_LOG_FLOOR), 1):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{_HEIGHT - _PAD + 16}" font-size="11" '
            f'text-anchor="middle">1e{tick}</text>'
        )
    parts.append(
        f'<text x="{_PAD}" y="{_PAD - 8}" font-size="11">share of requests (max {top:.3f})</text>'
    )
    for index, (role, shares) in enumerate(series.items()):
        points = []
        for i, share in enumerate(shares):
            points += [f"{x(edges[i]):.1f},{y(share):.1f}", f"{x(edges[i + 1]):.1f},{y(share):.1f}"]
        colour = _COLOURS[role]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{" ".join(points)}"/>'
        )
        threshold = np.log10(max(thresholds[role], 10**_LOG_FLOOR))
        parts.append(
            f'<line x1="{x(threshold):.1f}" x2="{x(threshold):.1f}" y1="{_PAD}" '
            f'y2="{_PAD + plot_h}" stroke="{colour}" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{_WIDTH - _PAD - 200}" y="{_PAD + 16 + 16 * index}" font-size="12" '
            f'fill="{colour}">{role} (dashed: decision threshold)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_shadow_report(
    summary: ShadowSummary,
    gate: ShadowGate,
    *,
    champion_scores: np.ndarray,
    challenger_scores: np.ndarray,
    generated_at: datetime,
) -> str:
    """Render the summary, the gate and the score histogram as one HTML page."""
    s = summary
    title = (
        f"Shadow evaluation of {s.model} version {s.challenger_version} against champion "
        f"{s.champion_version}"
    )
    overview = _table(
        ["figure", "value"],
        [
            ["paired requests", s.requests],
            ["shadow scoring errors", s.shadow_errors],
            ["decision agreement", s.agreement],
            ["decisions flipped", s.flipped["total"]],
            ["newly flagged by the challenger", s.flipped["newly_flagged"]],
            ["no longer flagged by the challenger", s.flipped["no_longer_flagged"]],
            ["Pearson correlation (log-odds)", s.correlation["pearson_log_odds"]],
            ["Spearman correlation", s.correlation["spearman"]],
            ["score PSI against the champion", s.score_psi],
            ["routing versions", ", ".join(str(v) for v in s.routing_versions) or "all"],
        ],
    )
    per_version = _table(
        ["figure", f"champion {s.champion_version}", f"challenger {s.challenger_version}"],
        [
            ["decision threshold", s.champion_threshold, s.challenger_threshold],
            ["alert rate", s.alert_rates["champion"], s.alert_rates["challenger"]],
            *[
                [f"latency {key}", s.latency["champion"][key], s.latency["challenger"][key]]
                for key in ("p50_ms", "p95_ms", "p99_ms")
            ],
            *[
                [key.replace("_", " "), s.labels["champion"][key], s.labels["challenger"][key]]
                for key in (
                    "pr_auc",
                    "precision_at_alert_rate",
                    "recall_at_alert_rate",
                    "precision_at_threshold",
                    "recall_at_threshold",
                )
            ],
        ],
    )
    segments = "".join(
        f"<h3>{html.escape(name)}</h3>"
        + _table(
            ["group", "requests", "flipped", "newly flagged", "no longer flagged", "flip rate"],
            [
                [
                    g["group"],
                    g["requests"],
                    g["total"],
                    g["newly_flagged"],
                    g["no_longer_flagged"],
                    g["rate"],
                ]
                for g in groups
            ],
        )
        for name, groups in s.segments.items()
    )
    checks = _table(
        ["check", "value", "limit", "result"],
        [
            [c.check, c.value, f"{c.comparison} {c.limit:g}", "passed" if c.passed else "FAILED"]
            for c in gate.checks
        ],
    )
    svg = score_histogram_svg(
        champion_scores,
        challenger_scores,
        {"champion": s.champion_threshold, "challenger": s.challenger_threshold},
    )
    # Entities are not decoded inside <script>; only "</" could end the element early.
    data = json.dumps({"summary": s.as_dict(), "gate": gate.as_dict()}).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Generated {generated_at.isoformat(timespec='seconds')}. Shadow gate: "
        f'<span class="{gate.verdict}">{gate.verdict}</span>. '
        f"{s.labels['labelled']} labelled pairs, {s.labels['positives']} positives.</p>"
        f"<h2>Shadow gate</h2>{checks}"
        f"<h2>Agreement and scores</h2>{overview}"
        f"<h2>Score distributions</h2>{svg}"
        f"<h2>Per version</h2>{per_version}"
        f"<h2>Flipped decisions per segment</h2>{segments}"
        f'<script type="application/json" id="shadow-evaluation">{data}</script>'
        "</body></html>"
    )


def write_shadow_report(
    settings: Settings, summary: ShadowSummary, page: str, generated_at: datetime
) -> Path:
    """Write the page under ``$MLP_HOME/reports/<model>/shadow/`` and return its path."""
    folder = settings.reports_dir / summary.model / "shadow"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = generated_at.strftime("%Y%m%dT%H%M%SZ")
    path = folder / (
        f"{summary.model}-v{summary.challenger_version}-vs-v{summary.champion_version}-{stamp}.html"
    )
    partial = path.with_suffix(".html.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return path
