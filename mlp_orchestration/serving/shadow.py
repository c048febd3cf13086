"""Shadow scoring off the request path: a bounded queue and one worker thread.

The request handler hands a job to ``ShadowScorer.submit``, which never blocks: when the queue
is full the job is dropped and counted. The worker scores each shadow version of the job and
writes the result to the prediction log with arm ``shadow``. ``stop`` finishes the queued jobs
first, so their records reach the prediction log before the writer flushes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlp_orchestration.errors import MlpError
from mlp_orchestration.scoring import FeatureError
from mlp_orchestration.serving.canary import SHADOW
from mlp_orchestration.serving.contract import InputContractError
from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.predlog import PredictionRecord
from mlp_orchestration.serving.state import LoadedVersion
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """One request to be scored again by the shadow versions of its route."""

    request_id: str
    model: str
    entity_id: str
    features: Mapping[str, Any]
    event_time: datetime
    routing_version: int
    versions: tuple[LoadedVersion, ...]


class ShadowScorer:
    """Runs ``handler`` on submitted jobs in a worker thread, dropping jobs when full."""

    def __init__(
        self,
        *,
        queue_size: int,
        metrics: ServingMetrics,
        handler: Callable[[ShadowJob], None],
    ) -> None:
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=queue_size)
        self._metrics = metrics
        self._handler = handler
        self._thread: threading.Thread | None = None
        self._drop_children: dict[str, Any] = {}
        self.dropped = 0

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job; return False (and count the drop) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            child = self._drop_children.get(job.model)
            if child is None:
                child = self._drop_children[job.model] = self._metrics.shadow_dropped.labels(
                    job.model
                )
            child.inc()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "shadow queue full; %d shadow jobs dropped so far (latest request %s)",
                    self.dropped,
                    job.request_id,
                )
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlp-shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Score the queued jobs, then stop the worker."""
        if self._thread is None:
            return
        # The sentinel waits behind the queued jobs; a blocking put is fine here because the
        # worker keeps taking jobs until it reaches it.
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            logger.error("shadow worker did not finish its queue within %.0f s", timeout_s)
        logger.info("shadow worker stopped; %d jobs dropped while running", self.dropped)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._handler(job)
            except Exception:  # noqa: BLE001 - one bad job must not stop shadow scoring
                logger.exception("shadow scoring of request %s failed", job.request_id)


def shadow_handler(
    *, append: Callable[[PredictionRecord], None], metrics: ServingMetrics
) -> Callable[[ShadowJob], None]:
    """Return the job handler that scores every shadow version and logs the results."""

    def handle(job: ShadowJob) -> None:
        for loaded in job.versions:
            append(_score_one(job, loaded))
            metrics.shadow_scored.labels(job.model, loaded.version).inc()

    return handle


def _score_one(job: ShadowJob, loaded: LoadedVersion) -> PredictionRecord:
    started = time.perf_counter()
    score: float | None = None
    status, error = 200, None
    try:
        score = loaded.native.predict_row(loaded.checked_row(job.features))
    except (FeatureError, InputContractError) as exc:
        # A shadow trained on other features or ranges cannot score this request, so the row
        # records why.
        status, error = 422, str(exc)
    except MlpError as exc:
        status, error = 500, str(exc)
    return PredictionRecord(
        request_id=job.request_id,
        logged_at=utcnow(),
        event_time=job.event_time,
        model=job.model,
        entity_id=job.entity_id,
        features=job.features,
        score=score,
        model_version=loaded.version,
        arm=SHADOW,
        routing_version=job.routing_version,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        status=status,
        error=error,
    )
