"""The alert: one event that a risk data scientist should hear about, independent of the sink."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

from mlp_orchestration.errors import MlpError


class AlertError(MlpError):
    """An alert was built from invalid facts (an empty title, a malformed failure record)."""


class AlertKind(StrEnum):
    """The lifecycle event an alert reports."""

    DRIFT_DETECTED = "drift_detected"
    RETRAIN_STARTED = "retrain_started"
    RETRAIN_FINISHED = "retrain_finished"
    ROLLOUT_STAGE = "rollout_stage"
    ROLLBACK = "rollback"
    PROMOTION = "promotion"
    GATE_FAILED = "gate_failed"
    RUN_FAILED = "run_failed"
    SLO_BREACH = "slo_breach"


class Severity(StrEnum):
    """Urgency of an alert: info needs no action, critical needs action now."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def format_value(value: Any) -> str:
    """Format a figure for a human: thousands separators, four significant digits for floats."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        return f"{value:.4g}"
    return str(value)


def _frozen_mapping(name: str, values: Mapping[str, Any]) -> Mapping[str, str]:
    if not isinstance(values, Mapping):
        raise AlertError(f"alert {name} must be a mapping of label to value, got {values!r}")
    result: dict[str, str] = {}
    for label, value in values.items():
        if not isinstance(label, str) or not label.strip():
            raise AlertError(f"alert {name} has an empty or non-text label {label!r}")
        result[label] = format_value(value)
    return MappingProxyType(result)


@dataclass(frozen=True)
class Alert:
    """One alert, as every sink receives it.

    Attributes:
        kind: the lifecycle event.
        title: one line stating what happened, shown as the Slack header.
        model: the model spec name, or None for events outside one model (a failed job).
        severity: how urgently someone should act.
        fields: ordered label to value pairs (figures already formatted, or formatted on
            construction with ``format_value``).
        links: ordered label to URL pairs; a value without an http(s) scheme is shown as a path.
        body: free text in Slack mrkdwn (``*bold*``, ``code``); sinks escape ``&``, ``<``, ``>``.
    """

    kind: AlertKind
    title: str
    model: str | None = None
    severity: Severity = Severity.WARNING
    fields: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, Any] = field(default_factory=dict)
    body: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AlertKind):
            object.__setattr__(self, "kind", _parse_enum(AlertKind, self.kind, "kind"))
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", _parse_enum(Severity, self.severity, "severity"))
        if not isinstance(self.title, str) or not self.title.strip():
            raise AlertError(f"alert title must be non-empty text, got {self.title!r}")
        object.__setattr__(self, "title", " ".join(self.title.split()))
        object.__setattr__(self, "fields", _frozen_mapping("fields", self.fields))
        links = _frozen_mapping("links", self.links)
        for label, url in links.items():
            if not url.strip():
                raise AlertError(f"alert link {label!r} has an empty URL; drop the link or set it")
        object.__setattr__(self, "links", links)
        object.__setattr__(self, "body", self.body or "")

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping fields, so hash the content digest.
        return hash(self.dedup_key)

    @property
    def dedup_key(self) -> str:
        """SHA-256 of kind, model and content: identical alerts share it, any change alters it."""
        canonical = json.dumps(self.to_dict(), sort_keys=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as JSON-ready data, with fields and links as ordered pairs."""
        return {
            "kind": self.kind.value,
            "model": self.model,
            "severity": self.severity.value,
            "title": self.title,
            "fields": [[label, value] for label, value in self.fields.items()],
            "links": [[label, url] for label, url in self.links.items()],
            "body": self.body,
        }


def _parse_enum(enum: type[Enum], value: Any, name: str) -> Any:
    try:
        return enum(value)
    except ValueError as exc:
        choices = ", ".join(member.value for member in enum)
        raise AlertError(f"alert {name} {value!r} is not one of: {choices}") from exc
