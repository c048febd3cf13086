"""Render an alert as a Slack Block Kit message with a plain-text fallback, within Slack's limits.

Slack's Block Kit reference (docs.slack.dev/reference/block-kit) sets these limits. A message
contains at most 50 blocks. A header's plain text is at most 150 characters and a section's text
at most 3,000. A section contains at most 10 fields of at most 2,000 characters each, and a
context block at most 10 elements. Slack truncates a message's ``text`` beyond 40,000 characters
and returns a ``message_truncated`` warning (Slack changelog, "Truncating really long messages").
Anything longer is cut here with a visible marker, so Slack accepts the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlp_orchestration.alerts.alert import Alert, Severity

MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_TEXT_CHARS = 3000
MAX_FIELDS_PER_SECTION = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT_CHARS = 40_000
# NOTE: chat.postMessage also rejects blocks of roughly 12,000 characters or more in total
# (error msg_blocks_too_long). Slack does not document that limit. A Slack SDK maintainer gave
# it as "12,000 text characters with a buffer for block containers" in
# github.com/slackapi/bolt-js/issues/2509, so this budget stays below it.
MAX_BLOCKS_TEXT_CHARS = 10_000

TRUNCATION_MARKER = "[truncated:"
_MARKER_RESERVE = 100

SEVERITY_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}


@dataclass(frozen=True)
class SlackMessage:
    """The ``text`` and ``blocks`` arguments of chat.postMessage for one alert."""

    text: str
    blocks: list[dict[str, Any]]
    truncated: bool


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Cut text to at most ``limit`` characters, ending with a marker that counts the cut."""
    if len(text) <= limit:
        return text
    # Reserve room for the marker as if the whole text were cut, so the result always fits.
    reserve = len(_marker(len(text)))
    prefix = _safe_cut(text[: max(limit - reserve, 0)])
    return prefix + _marker(len(text) - len(prefix))


def _marker(omitted: int) -> str:
    return f" … {TRUNCATION_MARKER} {omitted:,} characters omitted]"


def _safe_cut(text: str) -> str:
    # Never leave half a link (<url|label>) or half an entity (&amp;) at the cut.
    open_link = text.rfind("<")
    if open_link > text.rfind(">"):
        text = text[:open_link]
    # An entity cut short looks like "&", "&a", "&am" or "&amp" at the very end.
    partial_entity = re.search(r"&[a-z]{0,3}$", text)
    if partial_entity:
        text = text[: partial_entity.start()]
    return text


def link(label: str, url: str) -> str:
    """Format a link in mrkdwn, or a value without an http(s) scheme as a code-formatted path."""
    if url.startswith(("http://", "https://")):
        safe_url = url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
        return f"<{safe_url}|{escape(label)}>"
    return f"{escape(label)}: `{escape(url)}`"


def render_text(alert: Alert) -> str:
    """Render the plain-text fallback: what notifications and clients without blocks show."""
    return clip(_full_text(alert), MAX_TEXT_CHARS)


def _full_text(alert: Alert) -> str:
    severity = alert.severity.value.upper()
    lines = [
        f"{SEVERITY_EMOJI[alert.severity]} [{severity}] {escape(alert.title)}",
        _meta_line(alert),
    ]
    lines.extend(f"{escape(label)}: {escape(value)}" for label, value in alert.fields.items())
    if alert.body:
        lines.append(escape(alert.body))
    lines.extend(link(label, url) for label, url in alert.links.items())
    return "\n".join(lines)


def render_message(alert: Alert) -> SlackMessage:
    """Render an alert as chat.postMessage ``text`` and ``blocks``, within Slack's limits."""
    blocks = [
        _header(f"{SEVERITY_EMOJI[alert.severity]} {alert.title}"),
        _context([_meta_line(alert)]),
        *_field_sections(alert),
    ]
    if alert.links:
        blocks.append(_section(" · ".join(link(lbl, url) for lbl, url in alert.links.items())))
    if alert.body:
        blocks.append(_section(escape(alert.body)))
    fitted = fit_blocks(blocks)
    full_text = _full_text(alert)
    text = clip(full_text, MAX_TEXT_CHARS)
    return SlackMessage(text=text, blocks=fitted, truncated=fitted != blocks or text != full_text)


def _meta_line(alert: Alert) -> str:
    parts = [f"*{alert.severity.value}*", alert.kind.value]
    if alert.model:
        parts.insert(0, f"model *{escape(alert.model)}*")
    return " · ".join(parts)


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(texts: Sequence[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def _field_sections(alert: Alert) -> list[dict[str, Any]]:
    fields = [
        {"type": "mrkdwn", "text": f"*{escape(label)}*\n{escape(value)}"}
        for label, value in alert.fields.items()
    ]
    return [
        {"type": "section", "fields": fields[start : start + MAX_FIELDS_PER_SECTION]}
        for start in range(0, len(fields), MAX_FIELDS_PER_SECTION)
    ]


def fit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return blocks cut to Slack's per-block, block-count and total-text limits.

    Blocks past the limits are dropped and a context block saying how many were dropped takes
    the last place. The input is not modified.
    """
    clipped = [_clip_block(block) for block in blocks]
    # One block and some characters always stay free for that closing marker.
    budget = MAX_BLOCKS_TEXT_CHARS - _MARKER_RESERVE
    fitted: list[dict[str, Any]] = []
    for block in clipped:
        size = _text_size(block)
        if len(fitted) == MAX_BLOCKS - 1 or size > budget:
            break
        fitted.append(block)
        budget -= size
    remaining = clipped[len(fitted) :]
    if remaining and len(fitted) < MAX_BLOCKS - 1:
        shortened = _shorten_section(remaining[0], budget)
        if shortened is not None:
            fitted.append(shortened)
            remaining = remaining[1:]
    if remaining:
        fitted.append(_context([f"… {TRUNCATION_MARKER} {len(remaining)} more blocks omitted]"]))
    return fitted


def _clip_block(block: dict[str, Any]) -> dict[str, Any]:
    block = dict(block)
    if block["type"] == "header":
        block["text"] = {**block["text"], "text": clip(block["text"]["text"], MAX_HEADER_CHARS)}
    elif block["type"] == "section":
        if "text" in block:
            text = clip(block["text"]["text"], MAX_SECTION_TEXT_CHARS)
            block["text"] = {**block["text"], "text": text}
        if "fields" in block:
            block["fields"] = [
                {**item, "text": clip(item["text"], MAX_FIELD_CHARS)}
                for item in block["fields"][:MAX_FIELDS_PER_SECTION]
            ]
    elif block["type"] == "context":
        block["elements"] = [
            {**item, "text": clip(item["text"], MAX_SECTION_TEXT_CHARS)}
            for item in block["elements"][:MAX_CONTEXT_ELEMENTS]
        ]
    return block


def _text_size(block: dict[str, Any]) -> int:
    size = 0
    if "text" in block:
        size += len(block["text"]["text"])
    for key in ("fields", "elements"):
        size += sum(len(item.get("text", "")) for item in block.get(key, []))
    return size


def _shorten_section(block: dict[str, Any], room: int) -> dict[str, Any] | None:
    # Only a text section can be cut to fit; a header or field grid is dropped whole.
    if block["type"] != "section" or "text" not in block or room < _MARKER_RESERVE:
        return None
    return {**block, "text": {**block["text"], "text": clip(block["text"]["text"], room)}}
