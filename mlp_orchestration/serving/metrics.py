"""Prometheus metrics of the scoring service.

Each app gets its own registry, so several apps can live in one process (tests). With several
uvicorn workers, ``mlp serve`` sets PROMETHEUS_MULTIPROC_DIR before the workers start. Every
worker then writes its values to files there, and ``/metrics`` merges the files of all workers.
Label children are cached per label tuple, so an observation on the request path is one
dictionary lookup plus the observation itself.

NOTE: started any other way with several workers (for example ``uvicorn --workers 4
--factory mlp_orchestration.serving.app:create_app``), each scrape of ``/metrics`` reports only
the worker that served it, unless PROMETHEUS_MULTIPROC_DIR points at an empty folder before the
workers start.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from mlp_orchestration.serving.core.config import multiprocess_enabled

# Seconds; dense below 10 ms, where a healthy single-row score lands.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
UNKNOWN_MODEL = "unknown"


class ServingMetrics:
    """The service's counters, gauges and the latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.latency = Histogram(
            "mlp_scoring_request_duration_seconds",
            "Time to validate and score one record, per model, version and arm.",
            ["model", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "mlp_scoring_requests",
            "Requests to the /v1 routes, per model, endpoint and HTTP status.",
            ["model", "endpoint", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "mlp_scoring_errors",
            "Requests to the /v1 routes answered with an error, per model, endpoint and category.",
            ["model", "endpoint", "category"],
            registry=registry,
        )

        self.shadow_scored = Counter(
            "mlp_shadow_scored",
            "Records scored by shadow versions, per model and version.",
            ["model", "version"],
            registry=registry,
        )
        self.shadow_dropped = Counter(
            "mlp_shadow_dropped",
            "Shadow scoring jobs dropped because the shadow queue was full.",
            ["model"],
            registry=registry,
        )

        self.reload_failures = Counter(
            "mlp_routing_reload_failures",
            "Failed attempts to load a model's new routing config; the last good one serves on.",
            ["model"],
            registry=registry,
        )
        self.load_error = Gauge(
            "mlp_routing_load_error",
            "1 while the model's latest routing config failed to load, else 0.",
            ["model"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.store_read_failures = Counter(
            "mlp_routing_store_read_failures",
            "Failed reads of the routing store, every one counted; the log rate-limits them.",
            registry=registry,
        )
        self.routing_version = Gauge(
            "mlp_routing_config_version",
            "Routing config version being served, per model.",
            ["model"],
            registry=registry,
            multiprocess_mode="livemin",
        )

        self.predlog_written = Counter(
            "mlp_prediction_log_written",
            "Prediction log rows written to the warehouse.",
            registry=registry,
        )
        self.predlog_dropped = Counter(
            "mlp_prediction_log_dropped",
            "Prediction log rows dropped because the buffer was full or a stop timed out.",
            registry=registry,
        )
        self.predlog_write_failures = Counter(
            "mlp_prediction_log_write_failures",
            "Failed prediction log inserts; the rows stay buffered and are retried.",
            registry=registry,
        )
        self.predlog_buffered = Gauge(
            "mlp_prediction_log_buffered",
            "Prediction log rows waiting to be written.",
            registry=registry,
            multiprocess_mode="livesum",
        )

        self._latency_children: dict[tuple[str, str, str], object] = {}
        self._request_children: dict[tuple[str, str, str], object] = {}

    def observe_latency(self, model: str, version: str, arm: str, seconds: float) -> None:
        key = (model, version, arm)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.latency.labels(*key)
        child.observe(seconds)

    def count_request(self, model: str, endpoint: str, status: int) -> None:
        key = (model, endpoint, str(status))
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()

    def count_error(self, model: str, endpoint: str, category: str, status: int) -> None:
        self.count_request(model, endpoint, status)
        self.errors.labels(model, endpoint, category).inc()

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type, merged over workers if needed."""
        if multiprocess_enabled():
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @staticmethod
    def mark_process_dead(pid: int) -> None:
        """Drop a stopped worker's live gauges from the multiprocess files."""
        if multiprocess_enabled():
            multiprocess.mark_process_dead(pid)
