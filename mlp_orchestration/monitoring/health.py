"""Serving health per window, model version and arm: volume, errors, latency, availability.

Windows are cut on ``logged_at``, the time the scoring service handled the request. Health is
about the service's own clock, and replayed traffic carries old event times. Availability
is request-based: the share of requests not failed by the service (status below 500). The error
rate counts every non-200 status, client errors included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.monitoring.store import upsert
from mlp_orchestration.monitoring.window import SERVED_ARMS
from mlp_orchestration.monitoring.windows import recent_windows
from mlp_orchestration.spec import ModelSpec, SloSpec
from mlp_orchestration.warehouse import prediction_log, serving_health_metrics, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthWindow:
    """Health of one model version on one arm in one window."""

    model: str
    window_start: datetime
    window_end: datetime
    model_version: str
    arm: str
    requests: int
    errors: int
    server_errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    availability: float

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["window_start"] = self.window_start.isoformat()
        values["window_end"] = self.window_end.isoformat()
        return values


@dataclass(frozen=True)
class SloResult:
    """One objective checked on the newest window of each served version and arm."""

    objective: str
    limit: float
    passed: bool
    breaches: tuple[dict[str, object], ...]
    checked: int


def _newest_logged_at(engine: Engine, model: str) -> datetime | None:
    query = sa.select(sa.func.max(prediction_log.c.logged_at)).where(
        prediction_log.c.model == model
    )
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read(engine: Engine, model: str, start: datetime, end: datetime) -> pd.DataFrame:
    query = (
        sa.select(
            prediction_log.c.logged_at,
            prediction_log.c.model_version,
            prediction_log.c.arm,
            prediction_log.c.status,
            prediction_log.c.latency_ms,
        )
        .where(prediction_log.c.model == model)
        .where(prediction_log.c.logged_at >= start)
        .where(prediction_log.c.logged_at < end)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["logged_at", "model_version", "arm", "status", "latency"])
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    # A request that failed before routing has no version; it still counts against the arm.
    frame["model_version"] = frame["model_version"].fillna("none").astype(str)
    return frame


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def summarize(
    frame: pd.DataFrame, *, model: str, start: datetime, end: datetime
) -> list[HealthWindow]:
    """Summarize the requests of one window per version and arm."""
    results = []
    for (version, arm), group in frame.groupby(["model_version", "arm"]):
        status = group["status"].to_numpy()
        latency = group.loc[group["status"] == 200, "latency"].dropna().to_numpy(np.float64)
        requests = len(group)
        errors = int((status != 200).sum())
        server_errors = int((status >= 500).sum())
        results.append(
            HealthWindow(
                model=model,
                window_start=start,
                window_end=end,
                model_version=str(version),
                arm=str(arm),
                requests=requests,
                errors=errors,
                server_errors=server_errors,
                error_rate=errors / requests,
                p50_ms=_percentile(latency, 50),
                p95_ms=_percentile(latency, 95),
                p99_ms=_percentile(latency, 99),
                availability=1.0 - server_errors / requests,
            )
        )
    return results


def compute_health(spec: ModelSpec, *, engine: Engine) -> list[HealthWindow]:
    """Compute and upsert health per window, version and arm over the SLO lookback."""
    slo = spec.monitoring.slo
    newest = _newest_logged_at(engine, spec.name)
    if newest is None:
        return []
    windows = recent_windows(newest, length=slo.window, lookback=slo.lookback)
    frame = _read(engine, spec.name, windows[0][0], windows[-1][1])
    results = []
    for start, end in windows:
        in_window = frame[
            (frame["logged_at"] >= pd.Timestamp(start)) & (frame["logged_at"] < pd.Timestamp(end))
        ]
        results.extend(summarize(in_window, model=spec.name, start=start, end=end))
    _record(engine, results)
    return results


def check_slos(slo: SloSpec, windows: Sequence[HealthWindow]) -> list[SloResult]:
    """Check the newest window of every served version and arm against the spec's SLOs."""
    served = [window for window in windows if window.arm in SERVED_ARMS and window.requests]
    newest = max((window.window_start for window in served), default=None)
    latest = [window for window in served if window.window_start == newest]
    objectives = [
        ("p99_latency_ms", slo.p99_latency_ms, lambda w: w.p99_ms, lambda v, lim: v <= lim),
        ("error_rate", slo.max_error_rate, lambda w: w.error_rate, lambda v, lim: v <= lim),
        ("availability", slo.min_availability, lambda w: w.availability, lambda v, lim: v >= lim),
    ]
    results = []
    for name, limit, measure, within in objectives:
        breaches = []
        for window in latest:
            value = measure(window)
            if value is not None and not within(value, limit):
                breaches.append(
                    {
                        "metric": name,
                        "value": value,
                        "limit": limit,
                        "model_version": window.model_version,
                        "arm": window.arm,
                        "window_start": window.window_start.isoformat(),
                    }
                )
        results.append(
            SloResult(
                objective=name,
                limit=limit,
                passed=not breaches,
                breaches=tuple(breaches),
                checked=len(latest),
            )
        )
    return results


@dataclass(frozen=True)
class ScrapeResult:
    """Totals read from the scoring service's ``/metrics``, or the error that prevented it."""

    url: str
    reachable: bool
    error: str | None = None
    samples: dict[str, float] | None = None


def scrape_service_metrics(base_url: str, model: str, *, timeout_s: float = 2.0) -> ScrapeResult:
    """Read request and error totals for ``model`` from the service's Prometheus ``/metrics``.

    The service being down is a normal state for this call: it returns ``reachable=False`` with
    the error, and the caller reports it.
    """
    from prometheus_client.parser import text_string_to_metric_families

    url = f"{base_url.rstrip('/')}/metrics"
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("scoring service metrics at %s could not be read: %s", url, exc)
        return ScrapeResult(url=url, reachable=False, error=str(exc) or type(exc).__name__)
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("model") != model or not sample.name.endswith("_total"):
                continue
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return ScrapeResult(url=url, reachable=True, samples=totals)


def _record(engine: Engine, results: list[HealthWindow]) -> None:
    computed_at = utcnow()
    rows = []
    for result in results:
        row = result.as_dict()
        row.pop("server_errors")
        row["window_start"] = result.window_start
        row["window_end"] = result.window_end
        row["computed_at"] = computed_at
        rows.append(row)
    with engine.begin() as conn:
        upsert(
            conn,
            serving_health_metrics,
            rows,
            key_columns=["model", "window_start", "model_version", "arm"],
        )
