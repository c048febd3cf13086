"""Alerts for risk data scientists: Slack with a token, the log without one.

Build an ``Alert`` with a builder from ``messages`` and send it through the sink that
``build_alert_sink`` returns::

    sink = build_alert_sink(settings, engine)
    result = sink.send(gate_failure_alert("fraud", version="7", failures=[...], run_url=url))

``send`` de-duplicates identical alerts across processes and records each attempt in the
warehouse ``alert_log`` table. It returns a ``SendResult``, so a failed delivery is a result
with status ``failed``, not an exception.
"""

from mlp_orchestration.alerts.alert import Alert, AlertError, AlertKind, Severity, format_value
from mlp_orchestration.alerts.blocks import SlackMessage, render_message, render_text
from mlp_orchestration.alerts.dedup import AlertLogError, SendStatus, alert_counts
from mlp_orchestration.alerts.factory import build_alert_sink
from mlp_orchestration.alerts.links import dagster_asset_url, dagster_run_url
from mlp_orchestration.alerts.log import LogSink, format_log_line
from mlp_orchestration.alerts.messages import (
    RetrainOutcome,
    drift_alert,
    gate_failure_alert,
    promotion_alert,
    retrain_alert,
    rollout_alert,
    run_failure_alert,
    slo_alert,
)
from mlp_orchestration.alerts.sink import AlertSink, SendResult
from mlp_orchestration.alerts.slack import SlackSink

__all__ = [
    "Alert",
    "AlertError",
    "AlertKind",
    "AlertLogError",
    "AlertSink",
    "LogSink",
    "RetrainOutcome",
    "SendResult",
    "SendStatus",
    "Severity",
    "SlackMessage",
    "SlackSink",
    "alert_counts",
    "build_alert_sink",
    "dagster_asset_url",
    "dagster_run_url",
    "drift_alert",
    "format_log_line",
    "format_value",
    "gate_failure_alert",
    "promotion_alert",
    "render_message",
    "render_text",
    "retrain_alert",
    "rollout_alert",
    "run_failure_alert",
    "slo_alert",
]
