"""The log sink: with no Slack token, alerts become one readable log line each."""

from __future__ import annotations

import json
import logging

from sqlalchemy.engine import Engine

from mlp_orchestration.alerts.alert import Alert, Severity
from mlp_orchestration.alerts.dedup import SendStatus
from mlp_orchestration.alerts.sink import AlertSink, Clock, Delivery
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

LOG_CHANNEL = "log"


def format_log_line(alert: Alert) -> str:
    """Format an alert as one line: severity, kind, model, title, then label=value pairs.

    Values are JSON-quoted when they contain spaces or quotes, so the line splits unambiguously.
    """
    parts = [
        f"ALERT [{alert.severity.value}] {alert.kind.value}",
        f"model={_quote(alert.model or '-')}",
        f"title={_quote(alert.title)}",
    ]
    parts.extend(f"{_quote(label)}={_quote(value)}" for label, value in alert.fields.items())
    parts.extend(f"link:{_quote(label)}={_quote(url)}" for label, url in alert.links.items())
    if alert.body:
        parts.append(f"body={_quote(alert.body)}")
    return " ".join(parts)


def _quote(value: str) -> str:
    if value and not any(char.isspace() or char in "\"'=" for char in value):
        return value
    return json.dumps(value, ensure_ascii=False)


class LogSink(AlertSink):
    """Writes alerts to the ``mlp_orchestration.alerts.log`` logger and records them as ``logged``.

    Info alerts are logged at INFO, warning and critical ones at WARNING. Each record also
    carries the alert as data in ``record.alert`` for structured log handlers.
    """

    def __init__(self, engine: Engine, *, dedup_window_s: float, clock: Clock = utcnow) -> None:
        super().__init__(engine, channel=LOG_CHANNEL, dedup_window_s=dedup_window_s, clock=clock)

    def render_text(self, alert: Alert) -> str:
        return format_log_line(alert)

    def _deliver(self, alert: Alert) -> Delivery:
        level = logging.INFO if alert.severity is Severity.INFO else logging.WARNING
        logger.log(level, "%s", format_log_line(alert), extra={"alert": alert.to_dict()})
        return Delivery(SendStatus.LOGGED)
