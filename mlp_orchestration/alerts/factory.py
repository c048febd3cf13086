"""Choose the alert sink for the configured profile: Slack with a token, the log without one."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from mlp_orchestration.alerts.log import LogSink
from mlp_orchestration.alerts.sink import AlertSink, Clock
from mlp_orchestration.alerts.slack import SlackSink
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)


def build_alert_sink(settings: Settings, engine: Engine, *, clock: Clock = utcnow) -> AlertSink:
    """Return a ``SlackSink`` when ``MLP_SLACK_TOKEN`` is set, otherwise a ``LogSink``.

    Both record every attempt in the warehouse ``alert_log`` table and de-duplicate identical
    alerts within ``MLP_ALERT_DEDUP_S`` seconds.

    Args:
        settings: the process settings.
        engine: the warehouse engine.
        clock: returns the current aware UTC time; tests pass a controllable clock.

    Raises:
        ConfigurationError: the Slack token, channel or base URL is malformed.
    """
    if settings.slack_token is None:
        logger.debug("MLP_SLACK_TOKEN is not set; alerts go to the log")
        return LogSink(engine, dedup_window_s=settings.alert_dedup_s, clock=clock)
    return SlackSink(
        engine,
        token=settings.slack_token.get_secret_value(),
        channel=settings.slack_channel,
        base_url=settings.slack_base_url,
        dedup_window_s=settings.alert_dedup_s,
        clock=clock,
    )
