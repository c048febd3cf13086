"""Traffic replay: real ULB transactions through the running scoring service, labels later.

Transactions of an event-time window are read from the warehouse's ``transactions`` table in
time order (``transaction_id`` breaks ties) and sent over HTTP at a fixed rate, one per request
or in batches. Each transaction's label reaches ``label_feedback`` ``label_delay_s`` wall-clock
seconds after it was sent, as outcomes (chargebacks, confirmed frauds) arrive in production:
a background thread delivers labels as they fall due, or the caller calls
``deliver_due_labels``. Requests that fail with a transport error, 429 or 5xx are retried a
bounded number of times; every failure is counted in the report.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from tqdm import tqdm

from mlp_orchestration.errors import ConfigurationError, ErrorCategory, MlpError
from mlp_orchestration.serving.client import ScoringClient, ScoringServiceError
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import get_engine, label_feedback, transactions, utcnow

logger = logging.getLogger(__name__)

# One transaction every 1,000 s. Far slower rates overflow the send schedule's timestamps.
MIN_RATE = 0.001
# Labels arrive in a background thread of the replay process, which has to stay up that long.
MAX_LABEL_DELAY_S = 7 * 24 * 3600.0

# Errors kept verbatim in the report; later ones are only counted.
_MAX_ERROR_MESSAGES = 10
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_LABEL_POLL_S = 0.2


class ReplayError(MlpError):
    """The replay stopped because the scoring service kept failing."""

    category = ErrorCategory.UNAVAILABLE

    def __init__(self, message: str, *, report: ReplayReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ReplayReport:
    """Counts of one replay: requests, outcomes, arms and labels."""

    model: str
    window_start: str
    window_end: str
    transactions: int
    sent: int = 0
    scored: int = 0
    failed: int = 0
    retries: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    arms: dict[str, int] = field(default_factory=dict)
    model_versions: dict[str, int] = field(default_factory=dict)
    routing_versions: dict[str, int] = field(default_factory=dict)
    labels_delivered: int = 0
    labels_pending: int = 0
    elapsed_s: float = 0.0
    stopped_early: bool = False
    aborted: str | None = None

    @property
    def rate(self) -> float:
        """Achieved transactions per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 2)}


def load_window(engine: Engine, spec: ModelSpec, start: datetime, end: datetime) -> pd.DataFrame:
    """Read the transactions with ``start <= event_time < end``, in time order.

    Raises:
        ConfigurationError: the window is empty or inverted, or a feature is not a column.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ConfigurationError(
            f"replay window {start} to {end} needs time zones; give ISO 8601 times with an "
            "offset, e.g. 2013-09-02T00:00:00+00:00"
        )
    if end <= start:
        raise ConfigurationError(f"replay window end {end} is not after its start {start}")
    missing = [name for name in spec.feature_names if name not in transactions.c]
    if missing:
        raise ConfigurationError(
            f"features {missing} of model {spec.name!r} are not columns of the transactions "
            "table; the replay sends ULB transactions only"
        )
    columns = [
        transactions.c.transaction_id,
        transactions.c.event_time,
        transactions.c.Class,
        *[transactions.c[name] for name in spec.feature_names],
    ]
    query = (
        sa.select(*columns)
        .where(transactions.c.event_time >= start, transactions.c.event_time < end)
        .order_by(transactions.c.event_time, transactions.c.transaction_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        with engine.connect() as conn:
            first, last = conn.execute(
                sa.select(
                    sa.func.min(transactions.c.event_time), sa.func.max(transactions.c.event_time)
                )
            ).one()
        contents = (
            f"the table contains event times {first} to {last}"
            if first is not None
            else "the transactions table is empty; load the dataset first"
        )
        raise ConfigurationError(
            f"no transactions between {start.isoformat()} and {end.isoformat()}: {contents}"
        )
    return pd.DataFrame(rows, columns=[c.name for c in columns])


def _insert_ignoring_duplicates(engine: Engine) -> Any:
    """Return an insert into label_feedback that skips labels already delivered before."""
    name = engine.dialect.name
    if name == "sqlite":
        return sqlite.insert(label_feedback).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(label_feedback).on_conflict_do_nothing()
    return label_feedback.insert()


class TrafficReplay:
    """Sends one window of transactions to the scoring service and delivers their labels.

    Use ``run()`` to replay in the calling thread, or ``start()`` then ``wait()`` (or
    ``stop()``) to replay in the background while doing something else.
    """

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        *,
        start: datetime,
        end: datetime,
        rate: float,
        label_delay_s: float,
        scoring_url: str | None = None,
        batch_size: int = 1,
        max_retries: int = 3,
        retry_backoff_s: float = 0.2,
        timeout_s: float = 10.0,
        max_consecutive_failures: int = 10,
        progress: bool = True,
        engine: Engine | None = None,
    ) -> None:
        # Every comparison with NaN is false, so `rate <= 0` alone lets NaN through, and an
        # infinite rate or delay never finishes.
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigurationError(
                f"replay rate {rate} must be above 0 transactions/s and finite; give for "
                "example 100"
            )
        if rate < MIN_RATE:
            raise ConfigurationError(
                f"replay rate {rate} transactions/s is below the lowest supported rate "
                f"{MIN_RATE}; give for example 100"
            )
        if not math.isfinite(label_delay_s) or label_delay_s < 0:
            raise ConfigurationError(
                f"label delay {label_delay_s} s must not be negative and must be finite; give "
                "for example 60"
            )
        if label_delay_s > MAX_LABEL_DELAY_S:
            raise ConfigurationError(
                f"label delay {label_delay_s} s is longer than the longest supported delay "
                f"{MAX_LABEL_DELAY_S:g} s (7 days); give for example 60"
            )
        if not 1 <= batch_size <= settings.max_batch:
            raise ConfigurationError(
                f"batch size {batch_size} must be between 1 and MLP_MAX_BATCH "
                f"({settings.max_batch})"
            )
        if max_retries < 0:
            raise ConfigurationError(f"max_retries {max_retries} must not be negative")
        self.settings = settings
        self.spec = spec
        self.rate = float(rate)
        self.label_delay_s = float(label_delay_s)
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_consecutive_failures = max_consecutive_failures
        self.progress = progress
        self.scoring_url = scoring_url or settings.scoring_url
        tokens = settings.api_token_list()
        self._client = ScoringClient(
            self.scoring_url, token=tokens[0] if tokens else None, timeout_s=timeout_s
        )
        self.engine = engine or get_engine(settings.warehouse_url)
        self.window = load_window(self.engine, spec, start, end)
        self.report = ReplayReport(
            model=spec.name,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
            transactions=len(self.window),
        )
        self._pending: deque[tuple[float, list[dict[str, Any]]]] = deque()
        self._pending_lock = threading.Lock()
        self._insert = _insert_ignoring_duplicates(self.engine)
        self._stop = threading.Event()
        self._sending_done = threading.Event()
        self._labels_stop = threading.Event()
        self._sender: threading.Thread | None = None
        self._labeller: threading.Thread | None = None
        self._failure: BaseException | None = None

    # Labels -------------------------------------------------------------------------------

    def deliver_due_labels(self, now: float | None = None) -> int:
        """Write every label whose delay has passed; return how many were written.

        Args:
            now: a ``time.monotonic()`` reading (default: now).
        """
        now = time.monotonic() if now is None else now
        due: list[dict[str, Any]] = []
        with self._pending_lock:
            while self._pending and self._pending[0][0] <= now:
                due.extend(self._pending.popleft()[1])
        return self._write_labels(due)

    def flush_labels(self) -> int:
        """Write every pending label at once, due or not; return how many were written."""
        with self._pending_lock:
            due = [row for _, rows in self._pending for row in rows]
            self._pending.clear()
        return self._write_labels(due)

    @property
    def labels_pending(self) -> int:
        with self._pending_lock:
            return sum(len(rows) for _, rows in self._pending)

    def _write_labels(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        arrived = utcnow()
        for row in rows:
            row["arrived_at"] = arrived
        with self.engine.begin() as conn:
            conn.execute(self._insert, rows)
        with self._pending_lock:
            self.report.labels_delivered += len(rows)
        return len(rows)

    def _label_loop(self) -> None:
        while not self._labels_stop.is_set():
            try:
                self.deliver_due_labels()
            except sa.exc.SQLAlchemyError:
                logger.exception("writing due labels of %s failed; retrying", self.spec.name)
            self._labels_stop.wait(_LABEL_POLL_S)

    # Sending ------------------------------------------------------------------------------

    def _records(self, chunk: pd.DataFrame) -> list[dict[str, Any]]:
        features = self.spec.feature_names
        return [
            {
                "entity_id": str(int(row.transaction_id)),
                "event_time": row.event_time.isoformat(),
                "features": {name: float(getattr(row, name)) for name in features},
            }
            for row in chunk.itertuples(index=False)
        ]

    def _send(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        attempt = 0
        while True:
            try:
                if len(records) == 1:
                    record = records[0]
                    return [
                        self._client.score(
                            self.spec.name,
                            record["entity_id"],
                            record["features"],
                            event_time=record["event_time"],
                        )
                    ]
                return self._client.score_batch(self.spec.name, records)
            except ScoringServiceError as exc:
                retryable = exc.status is None or exc.status in _RETRYABLE_STATUS
                if not retryable or attempt >= self.max_retries or self._stop.is_set():
                    raise
                attempt += 1
                self.report.retries += 1
                logger.warning(
                    "replay of %s: %s; retry %d of %d",
                    self.spec.name,
                    exc,
                    attempt,
                    self.max_retries,
                )
                self._stop.wait(self.retry_backoff_s * 2 ** (attempt - 1))

    def _count(self, results: list[dict[str, Any]]) -> None:
        report = self.report
        report.scored += len(results)
        for result in results:
            for counts, key in (
                (report.arms, result.get("arm")),
                (report.model_versions, result.get("model_version")),
                (report.routing_versions, result.get("routing_version")),
            ):
                counts[str(key)] = counts.get(str(key), 0) + 1
        report.status_counts["200"] = report.status_counts.get("200", 0) + len(results)

    def _count_failure(self, exc: ScoringServiceError, size: int) -> None:
        report = self.report
        report.failed += size
        key = str(exc.status) if exc.status is not None else "unreachable"
        report.status_counts[key] = report.status_counts.get(key, 0) + size
        if len(report.errors) < _MAX_ERROR_MESSAGES:
            report.errors.append(str(exc))
        logger.warning("replay of %s: %d transactions failed: %s", self.spec.name, size, exc)

    def _send_loop(self) -> None:
        started = time.monotonic()
        consecutive_failures = 0
        bar = tqdm(
            total=len(self.window),
            unit="tx",
            desc=f"replay {self.spec.name}",
            disable=not self.progress,
            mininterval=1.0,
        )
        try:
            for offset in range(0, len(self.window), self.batch_size):
                # Pace by schedule, not by sleeping a fixed gap, so slow responses do not
                # lower the rate below the target.
                delay = started + offset / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if self._stop.is_set():
                    break
                chunk = self.window.iloc[offset : offset + self.batch_size]
                records = self._records(chunk)
                try:
                    self._count(self._send(records))
                    consecutive_failures = 0
                except ScoringServiceError as exc:
                    self._count_failure(exc, len(records))
                    consecutive_failures += 1
                self.report.sent += len(records)
                self._queue_labels(chunk)
                bar.update(len(records))
                if consecutive_failures >= self.max_consecutive_failures:
                    self.report.aborted = (
                        f"{consecutive_failures} requests in a row failed at "
                        f"{self.scoring_url}; last error: {self.report.errors[-1]}"
                    )
                    break
        finally:
            bar.close()
            self.report.elapsed_s = time.monotonic() - started
            self.report.stopped_early = self.report.sent < len(self.window)
            self._sending_done.set()

    def _queue_labels(self, chunk: pd.DataFrame) -> None:
        due = time.monotonic() + self.label_delay_s
        rows = [
            {
                "model": self.spec.name,
                "entity_id": str(int(row.transaction_id)),
                "label": int(row.Class),
                "event_time": row.event_time.to_pydatetime(),
            }
            for row in chunk.itertuples(index=False)
        ]
        with self._pending_lock:
            self._pending.append((due, rows))

    def _run_sender(self) -> None:
        try:
            self._send_loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread calling wait()
            self._failure = exc
            self._sending_done.set()

    # Control ------------------------------------------------------------------------------

    def start(self) -> TrafficReplay:
        """Start sending and delivering labels in background threads."""
        if self._sender is not None:
            raise ConfigurationError("this replay was already started; create a new one")
        logger.info(
            "replaying %d transactions of %s (%s to %s) at %.1f/s to %s, labels after %.1fs",
            len(self.window),
            self.spec.name,
            self.report.window_start,
            self.report.window_end,
            self.rate,
            self.scoring_url,
            self.label_delay_s,
        )
        self._labeller = threading.Thread(
            target=self._label_loop, name="replay-labels", daemon=True
        )
        self._sender = threading.Thread(target=self._run_sender, name="replay-send", daemon=True)
        self._labeller.start()
        self._sender.start()
        return self

    @property
    def sending_done(self) -> bool:
        return self._sending_done.is_set()

    def stop(self) -> None:
        """Stop sending; labels of what was sent are still delivered by ``wait``."""
        self._stop.set()

    def wait(self, timeout: float | None = None, *, flush_labels: bool = False) -> ReplayReport:
        """Wait until sending ends and every label is delivered; return the report.

        Args:
            timeout: seconds to wait for sending to end; None waits as long as it takes.
            flush_labels: deliver labels not yet due at once instead of waiting for them.

        Raises:
            ReplayError: the scoring service failed ``max_consecutive_failures`` times in a row.
        """
        if self._sender is None:
            raise ConfigurationError("call start() before wait()")
        self._sender.join(timeout)
        if self._sender.is_alive():
            self.stop()
            self._sender.join()
        if flush_labels:
            self.flush_labels()
        else:
            while self.labels_pending:
                self.deliver_due_labels()
                time.sleep(_LABEL_POLL_S)
        self._labels_stop.set()
        if self._labeller is not None:
            self._labeller.join()
        self._client.close()
        self.report.labels_pending = self.labels_pending
        if self._failure is not None:
            raise self._failure
        logger.info("replay of %s finished: %s", self.spec.name, self.report.as_dict())
        if self.report.aborted:
            raise ReplayError(
                f"replay of {self.spec.name} stopped: {self.report.aborted}", report=self.report
            )
        return self.report

    def run(self, *, flush_labels: bool = False) -> ReplayReport:
        """Replay the whole window in this thread (labels in the background); see ``wait``."""
        return self.start().wait(flush_labels=flush_labels)
