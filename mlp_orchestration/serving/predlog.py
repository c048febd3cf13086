"""The prediction log writer: every scored record goes to ``prediction_log`` in batches.

Request handlers only append a record to an in-memory buffer. A background thread turns records
into rows and inserts them, ``batch_size`` per insert, at least every ``flush_s`` seconds.
When the database is unreachable, the writer keeps the rows, retries with exponential backoff,
and drops the oldest rows (counted in metrics) once ``buffer_size`` are waiting. ``stop``
writes every buffered row before it returns, retrying for up to ``stop_timeout_s``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import MlpError
from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.warehouse import prediction_log

logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0


class PredictionRecord(NamedTuple):
    """One scored (or failed) record, as the request path hands it over."""

    request_id: str
    logged_at: datetime
    event_time: datetime
    model: str
    entity_id: str
    features: Mapping[str, Any]
    score: float | None
    model_version: str | None
    arm: str
    routing_version: int | None
    latency_ms: float
    status: int = 200
    error: str | None = None


# prediction_log with the features column bound as text: orjson serialises the features about
# ten times faster than the JSON type's json.dumps. SQLite stores JSON as text anyway, and
# PostgreSQL casts the untyped string parameter to json on insert.
_LOG_INSERT = sa.table(
    prediction_log.name,
    *(
        sa.column(column.name, sa.Text() if column.name == "features" else column.type)
        for column in prediction_log.columns
        if column.name != "id"
    ),
).insert()


def _row(record: PredictionRecord) -> dict[str, Any]:
    row = record._asdict()
    row["features"] = orjson.dumps(record.features).decode()
    return row


_COLUMNS = [column.name for column in prediction_log.columns if column.name != "id"]
# Rows per INSERT statement on SQLite: 13 parameters each stays under the 32,766 host
# parameters SQLite 3.32 and later accept in one statement.
_SQLITE_ROWS_PER_STATEMENT = 1000


@functools.cache
def _sqlite_statement(rows: int) -> str:
    values = "(" + ",".join("?" * len(_COLUMNS)) + ")"
    return f"INSERT INTO prediction_log ({','.join(_COLUMNS)}) VALUES " + ",".join([values] * rows)


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DATETIME type writes and parses back.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_sqlite(conn: sa.Connection, batch: list[PredictionRecord]) -> None:
    """Insert with one multi-row statement per chunk.

    cursor.executemany steps SQLite once per row and releases the GIL around every step. Under
    load the writer and the request thread then pass the GIL back and forth hundreds of times
    per batch, while one statement per chunk passes it once.
    """
    for start in range(0, len(batch), _SQLITE_ROWS_PER_STATEMENT):
        chunk = batch[start : start + _SQLITE_ROWS_PER_STATEMENT]
        parameters: list[Any] = []
        for record in chunk:
            parameters.extend((
                record.request_id, _sqlite_time(record.logged_at), _sqlite_time(record.event_time),
                record.model, record.entity_id, orjson.dumps(record.features).decode(),
                record.score, record.model_version, record.arm, record.routing_version,
                record.latency_ms, record.status, record.error,
            ))  # fmt: skip
        conn.exec_driver_sql(_sqlite_statement(len(chunk)), tuple(parameters))


class PredictionLogWriter:
    """Buffers prediction records and writes them to the warehouse from its own thread."""

    def __init__(
        self,
        *,
        engine_provider: Callable[[], Engine],
        metrics: ServingMetrics,
        batch_size: int,
        buffer_size: int,
        flush_s: float,
        stop_timeout_s: float,
    ) -> None:
        self._engine_provider = engine_provider
        self._metrics = metrics
        self._batch_size = batch_size
        self._buffer_size = buffer_size
        self._flush_s = flush_s
        self._stop_timeout_s = stop_timeout_s
        self._buffer: deque[PredictionRecord] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.written = 0
        self.dropped = 0

    def append(self, record: PredictionRecord) -> None:
        """Buffer one record without touching the database (only an in-memory lock)."""
        with self._lock:
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                self._count_dropped(1)
            self._buffer.append(record)
            waiting = len(self._buffer)
        if waiting == self._batch_size:
            self._wake.set()

    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlp-prediction-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write every buffered record, retrying for up to ``stop_timeout_s``, then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._stop_timeout_s + 30)
        logger.info(
            "prediction log writer stopped: %d rows written, %d dropped, %d still buffered",
            self.written,
            self.dropped,
            self.pending(),
        )

    def _run(self) -> None:
        deadline: float | None = None
        backoff = 0.0
        while True:
            wait_s = backoff or self._flush_s
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, deadline - time.monotonic()))
            self._wake.wait(wait_s)
            self._wake.clear()
            if self._stopping.is_set() and deadline is None:
                deadline = time.monotonic() + self._stop_timeout_s
            backoff = self._write_buffered(backoff)
            if deadline is None:
                continue
            if not self._buffer:
                return
            if time.monotonic() >= deadline:
                self._give_up()
                return

    def _write_buffered(self, backoff: float) -> float:
        """Write full batches until the buffer is empty; return the next retry delay (0 = none)."""
        while self._buffer:
            batch = self._take_batch()
            try:
                self._insert(batch)
            except (sa.exc.SQLAlchemyError, MlpError) as exc:
                self._put_back(batch)
                return self._record_failure(exc, backoff)
            self.written += len(batch)
            self._metrics.predlog_written.inc(len(batch))
            if self._failures:
                logger.info("prediction log writes resumed after %d failures", self._failures)
                self._failures = 0
        self._metrics.predlog_buffered.set(0)
        return 0.0

    def _take_batch(self) -> list[PredictionRecord]:
        with self._lock:
            count = min(self._batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _put_back(self, batch: list[PredictionRecord]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(batch))
            excess = len(self._buffer) - self._buffer_size
            for _ in range(max(0, excess)):
                self._buffer.popleft()
            if excess > 0:
                self._count_dropped(excess)
            self._metrics.predlog_buffered.set(len(self._buffer))

    def _insert(self, batch: list[PredictionRecord]) -> None:
        engine = self._engine_provider()
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                _insert_sqlite(conn, batch)
            else:
                # PostgreSQL: SQLAlchemy 2.0 sends executemany as multi-row VALUES pages.
                conn.execute(_LOG_INSERT, [_row(record) for record in batch])

    def _record_failure(self, exc: Exception, backoff: float) -> float:
        self._failures += 1
        self._metrics.predlog_write_failures.inc()
        delay = min(_MAX_BACKOFF_S, max(self._flush_s, backoff * 2))
        if self._failures == 1 or self._failures % 10 == 0:
            logger.warning(
                "prediction log insert failed (failure %d, %d rows buffered, retry in %.1f s): %s",
                self._failures,
                self.pending(),
                delay,
                exc,
            )
        return delay

    def _give_up(self) -> None:
        with self._lock:
            lost = len(self._buffer)
            self._buffer.clear()
        self._count_dropped(lost)
        logger.error(
            "prediction log: %d buffered rows dropped because the database stayed unreachable "
            "for %.0f s after the stop request",
            lost,
            self._stop_timeout_s,
        )

    def _count_dropped(self, count: int) -> None:
        self.dropped += count
        self._metrics.predlog_dropped.inc(count)
