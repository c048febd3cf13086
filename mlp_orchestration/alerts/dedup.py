"""The warehouse ``alert_log`` table as the record of every send attempt and the dedup store.

An alert is a duplicate when a row with the same fingerprint and channel, in status ``pending``,
``sent`` or ``logged``, was written within the dedup window. The rows live in the shared
warehouse, so the rule applies across processes: the Dagster daemon, the CLI and the demo all
read the same rows. ``failed`` rows do not count, so a failed alert is sent again on the next
attempt.

Claiming is atomic per fingerprint: the new row is inserted before the lookup in one transaction.
On SQLite the insert takes the database write lock, which is held until commit. On PostgreSQL a
transaction-level advisory lock keyed on the fingerprint serializes concurrent claims.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import Enum, StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlp_orchestration.errors import ErrorCategory, MlpError
from mlp_orchestration.warehouse import alert_log

logger = logging.getLogger(__name__)


class SendStatus(StrEnum):
    """Outcome of one send attempt, as stored in ``alert_log.status``."""

    PENDING = "pending"
    SENT = "sent"
    LOGGED = "logged"
    SUPPRESSED_DUPLICATE = "suppressed_duplicate"
    FAILED = "failed"


# Statuses of an alert that reached its sink, or may still be on its way there.
CLAIMING_STATUSES = (SendStatus.PENDING.value, SendStatus.SENT.value, SendStatus.LOGGED.value)

# Both text columns of alert_log are unbounded, but an error is capped so that a server's HTML
# error page cannot bloat the table.
MAX_ERROR_CHARS = 2000


class AlertLogError(MlpError):
    """The warehouse ``alert_log`` table could not be read or written."""

    category = ErrorCategory.UNAVAILABLE


class AlertLog:
    """Reads and writes ``alert_log`` rows for one channel of one sink."""

    def __init__(self, engine: Engine, *, channel: str) -> None:
        self._engine = engine
        self._channel = channel

    def claim(
        self,
        *,
        fingerprint: str,
        kind: str,
        model: str | None,
        text: str,
        now: datetime,
        window_s: float,
    ) -> tuple[int, bool]:
        """Record a send attempt and decide whether it duplicates a recent one.

        Args:
            fingerprint: the alert's dedup key.
            kind: the alert kind, stored for queries.
            model: the model name, or None.
            text: the message text as the sink renders it.
            now: the attempt time (aware UTC).
            window_s: seconds within which an identical alert counts as a duplicate; 0 turns
                de-duplication off.

        Returns:
            The new row's id and True when the attempt is a duplicate. A duplicate's row is
            stored with status ``suppressed_duplicate``; any other row is stored as ``pending``
            and must be completed with ``finish``.

        Raises:
            AlertLogError: the warehouse is unreachable or rejects the write.
        """
        try:
            with self._engine.begin() as connection:
                self._lock(connection, fingerprint)
                row_id = self._insert_pending(connection, fingerprint, kind, model, text, now)
                duplicate = window_s > 0 and self._has_recent(
                    connection, fingerprint, row_id, now - timedelta(seconds=window_s)
                )
                if duplicate:
                    self._set_status(connection, row_id, SendStatus.SUPPRESSED_DUPLICATE, None)
        except sa.exc.SQLAlchemyError as exc:
            raise AlertLogError(
                f"cannot record alert {kind} in the warehouse alert_log table: {exc}. "
                "Check that the warehouse (MLP_DATABASE_URL) is reachable."
            ) from exc
        return row_id, duplicate

    def finish(self, row_id: int, status: SendStatus, error: str | None = None) -> None:
        """Store the final status of a claimed attempt.

        Raises:
            AlertLogError: the warehouse is unreachable or rejects the write.
        """
        try:
            with self._engine.begin() as connection:
                self._set_status(connection, row_id, status, error)
        except sa.exc.SQLAlchemyError as exc:
            raise AlertLogError(
                f"cannot store status {status.value} of alert_log row {row_id}: {exc}"
            ) from exc

    def _lock(self, connection: Connection, fingerprint: str) -> None:
        if connection.dialect.name == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(f"{self._channel}\0{fingerprint}".encode()).digest()[:8],
                "big",
                signed=True,
            )
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        # SQLite needs no statement here: the insert that follows takes the write lock.

    def _insert_pending(
        self,
        connection: Connection,
        fingerprint: str,
        kind: str,
        model: str | None,
        text: str,
        now: datetime,
    ) -> int:
        result = connection.execute(
            alert_log.insert().values(
                fingerprint=fingerprint,
                kind=kind,
                model=model,
                channel=self._channel,
                status=SendStatus.PENDING.value,
                text=text,
                error=None,
                sent_at=now,
            )
        )
        return int(result.inserted_primary_key[0])

    def _has_recent(
        self, connection: Connection, fingerprint: str, row_id: int, cutoff: datetime
    ) -> bool:
        query = (
            sa.select(alert_log.c.id)
            .where(
                alert_log.c.fingerprint == fingerprint,
                alert_log.c.channel == self._channel,
                alert_log.c.status.in_(CLAIMING_STATUSES),
                alert_log.c.sent_at > cutoff,
                alert_log.c.id != row_id,
            )
            .limit(1)
        )
        return connection.execute(query).first() is not None

    @staticmethod
    def _set_status(
        connection: Connection, row_id: int, status: SendStatus, error: str | None
    ) -> None:
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + " [truncated]"
        connection.execute(
            alert_log.update()
            .where(alert_log.c.id == row_id)
            .values(status=status.value, error=error)
        )


def alert_counts(
    engine: Engine,
    *,
    since: datetime | None = None,
    model: str | None = None,
    kinds: Iterable[str | Enum] | None = None,
) -> dict[str, int]:
    """Count ``alert_log`` rows per status, e.g. ``{"sent": 3, "failed": 1, ...}``.

    Every status in ``SendStatus`` is present in the result, with 0 when no row has it.

    Args:
        engine: the warehouse engine.
        since: count only attempts at or after this time (aware UTC).
        model: count only this model's alerts.
        kinds: count only these alert kinds (``AlertKind`` values).
    """
    query = sa.select(alert_log.c.status, sa.func.count()).group_by(alert_log.c.status)
    if since is not None:
        query = query.where(alert_log.c.sent_at >= since)
    if model is not None:
        query = query.where(alert_log.c.model == model)
    if kinds is not None:
        values = [kind.value if isinstance(kind, Enum) else kind for kind in kinds]
        query = query.where(alert_log.c.kind.in_(values))
    counts = {status.value: 0 for status in SendStatus}
    try:
        with engine.connect() as connection:
            for status, count in connection.execute(query):
                counts[status] = int(count)
    except sa.exc.SQLAlchemyError as exc:
        raise AlertLogError(f"cannot read the warehouse alert_log table: {exc}") from exc
    return counts
