"""The sink interface: de-duplicate, deliver, record and count every alert."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from mlp_orchestration.alerts.alert import Alert
from mlp_orchestration.alerts.dedup import AlertLog, SendStatus
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Delivery:
    """Transport outcome of one message, as a sink reports it."""

    status: SendStatus
    error: str | None = None
    ts: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class SendResult:
    """Outcome of ``AlertSink.send`` for one alert.

    Attributes:
        status: ``sent`` (Slack accepted it), ``logged`` (written to the log because no Slack
            token is set), ``suppressed_duplicate`` or ``failed``.
        fingerprint: the alert's dedup key.
        channel: the Slack channel, or ``log``.
        log_id: id of the ``alert_log`` row that records this attempt.
        error: why the send failed (a Slack error code such as ``invalid_auth`` and a hint).
        ts: Slack's message timestamp, which identifies the posted message.
        truncated: the message was shortened to fit Slack's size limits.
    """

    status: SendStatus
    fingerprint: str
    channel: str
    log_id: int
    error: str | None = None
    ts: str | None = None
    truncated: bool = False

    @property
    def delivered(self) -> bool:
        """True when the alert reached Slack or the log in this attempt."""
        return self.status in (SendStatus.SENT, SendStatus.LOGGED)


class AlertSink(abc.ABC):
    """Base of every sink: ``send`` de-duplicates, delivers, records and counts.

    Subclasses implement ``render_text`` and ``_deliver``. A failed delivery (a Slack error, an
    unreachable API) comes back as a ``failed`` result, logged and recorded in ``alert_log``.
    ``send`` raises ``AlertLogError`` when the warehouse cannot be written, and re-raises an
    unexpected error from ``_deliver`` after recording the attempt as ``failed``.

    A duplicate is suppressed while an identical alert to the same channel is ``pending``,
    ``sent`` or ``logged`` within ``dedup_window_s``. If that earlier attempt then fails, the
    suppressed one is not retried, but the next identical alert goes through.
    """

    channel: str

    def __init__(
        self,
        engine: Engine,
        *,
        channel: str,
        dedup_window_s: float,
        clock: Clock = utcnow,
    ) -> None:
        self.channel = channel
        self._log = AlertLog(engine, channel=channel)
        self._dedup_window_s = dedup_window_s
        self._clock = clock
        self._counts = {status.value: 0 for status in SendStatus if status != SendStatus.PENDING}
        self._counts_lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        """Attempts of this sink instance per status; ``alert_counts`` covers all processes."""
        with self._counts_lock:
            return dict(self._counts)

    def send(self, alert: Alert) -> SendResult:
        """De-duplicate, deliver and record one alert.

        Raises:
            AlertLogError: the warehouse ``alert_log`` table cannot be written.
        """
        fingerprint = alert.dedup_key
        row_id, duplicate = self._log.claim(
            fingerprint=fingerprint,
            kind=alert.kind.value,
            model=alert.model,
            text=self.render_text(alert),
            now=self._clock(),
            window_s=self._dedup_window_s,
        )
        if duplicate:
            logger.info(
                "Alert %s for %s suppressed: an identical alert went to %s within %ss "
                "(fingerprint %s, alert_log id %d)",
                alert.kind.value,
                alert.model or "-",
                self.channel,
                self._dedup_window_s,
                fingerprint[:12],
                row_id,
            )
            delivery = Delivery(SendStatus.SUPPRESSED_DUPLICATE)
        else:
            delivery = self._deliver_and_record(alert, row_id)
        self._count(delivery.status)
        return SendResult(
            status=delivery.status,
            fingerprint=fingerprint,
            channel=self.channel,
            log_id=row_id,
            error=delivery.error,
            ts=delivery.ts,
            truncated=delivery.truncated,
        )

    def _deliver_and_record(self, alert: Alert, row_id: int) -> Delivery:
        try:
            delivery = self._deliver(alert)
        except BaseException as exc:
            # An unexpected error must not leave the row pending, which would suppress retries.
            self._log.finish(row_id, SendStatus.FAILED, f"{type(exc).__name__}: {exc}")
            self._count(SendStatus.FAILED)
            raise
        self._log.finish(row_id, delivery.status, delivery.error)
        return delivery

    def _count(self, status: SendStatus) -> None:
        with self._counts_lock:
            self._counts[status.value] += 1

    @abc.abstractmethod
    def render_text(self, alert: Alert) -> str:
        """Return the message text this sink delivers, as stored in ``alert_log.text``."""

    @abc.abstractmethod
    def _deliver(self, alert: Alert) -> Delivery:
        """Deliver one alert; return ``failed`` with an error instead of raising."""
