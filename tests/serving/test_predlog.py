"""The prediction log writer: batches, retries while the database is down, flushes on stop."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.predlog import PredictionLogWriter, PredictionRecord
from mlp_orchestration.warehouse import get_engine, metadata, prediction_log, utcnow

from .conftest import Registered
from .helpers import (
    MODEL,
    features_of,
    free_port,
    service_settings,
    start_cli_server,
    wait_until,
    write_routing,
)


def record(number: int) -> PredictionRecord:
    now = utcnow()
    return PredictionRecord(
        request_id=f"req-{number}",
        logged_at=now,
        event_time=now,
        model=MODEL,
        entity_id=str(number),
        features={"V1": float(number), "V2": None},
        score=0.01,
        model_version="1",
        arm="champion",
        routing_version=1,
        latency_ms=0.2,
    )


def writer_for(engine: sa.Engine, **options: float) -> tuple[PredictionLogWriter, ServingMetrics]:
    metrics = ServingMetrics()
    values = {"batch_size": 100, "buffer_size": 10_000, "flush_s": 0.05, "stop_timeout_s": 5.0}
    values.update(options)
    writer = PredictionLogWriter(engine_provider=lambda: engine, metrics=metrics, **values)
    return writer, metrics


def logged_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(prediction_log.c.request_id).order_by(prediction_log.c.id)
        return list(conn.execute(query).scalars())


def unreachable_engine(tmp_path: Path) -> tuple[sa.Engine, Path]:
    """An SQLite engine whose folder does not exist yet, so every connect fails."""
    folder = tmp_path / "not-yet"
    return sa.create_engine(f"sqlite:///{folder / 'warehouse.db'}"), folder


def test_stop_writes_every_buffered_row(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    writer, metrics = writer_for(engine, flush_s=30.0, batch_size=500)
    writer.start()
    for i in range(1234):
        writer.append(record(i))
    writer.stop()
    assert logged_ids(engine) == [f"req-{i}" for i in range(1234)]
    assert metrics.predlog_written._value.get() == 1234


def test_retries_until_database_back(tmp_path: Path) -> None:
    engine, folder = unreachable_engine(tmp_path)
    writer, metrics = writer_for(engine)
    writer.start()
    for i in range(30):
        writer.append(record(i))
    wait_until(
        lambda: metrics.predlog_write_failures._value.get() >= 2,
        timeout_s=10,
        what="failed writes",
    )
    assert writer.pending() == 30

    folder.mkdir()
    metadata.create_all(engine, tables=[prediction_log])
    wait_until(lambda: writer.written == 30, timeout_s=15, what="the retry to succeed")
    writer.stop()
    assert logged_ids(engine) == [f"req-{i}" for i in range(30)]
    assert writer.dropped == 0


def test_full_buffer_drops_oldest(tmp_path: Path) -> None:
    engine, folder = unreachable_engine(tmp_path)
    writer, metrics = writer_for(engine, buffer_size=10)
    writer.start()
    for i in range(25):
        writer.append(record(i))
    assert writer.dropped == 15
    assert metrics.predlog_dropped._value.get() == 15

    folder.mkdir()
    metadata.create_all(engine, tables=[prediction_log])
    wait_until(lambda: writer.written == 10, timeout_s=15, what="the buffered rows")
    writer.stop()
    assert logged_ids(engine) == [f"req-{i}" for i in range(15, 25)]


def test_append_never_waits_for_database(tmp_path: Path) -> None:
    engine, _ = unreachable_engine(tmp_path)
    writer, _ = writer_for(engine, buffer_size=1000)
    writer.start()
    started = time.perf_counter()
    for i in range(5000):
        writer.append(record(i))
    elapsed = time.perf_counter() - started
    writer._stop_timeout_s = 0.0
    writer.stop()
    assert elapsed < 1.0
    assert writer.dropped == 5000  # 4000 overflowed the buffer, 1000 given up at stop


def test_stop_gives_up_when_database_stays_down(tmp_path: Path) -> None:
    engine, _ = unreachable_engine(tmp_path)
    writer, metrics = writer_for(engine, stop_timeout_s=0.5)
    writer.start()
    for i in range(20):
        writer.append(record(i))
    started = time.monotonic()
    writer.stop()
    assert time.monotonic() - started < 5
    assert writer.dropped == 20
    assert metrics.predlog_dropped._value.get() == 20


def _metric_total(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.mark.timeout(240)
def test_sigterm_logs_every_request(registered: Registered, tmp_path: Path) -> None:
    """A real `mlp serve` with two workers: SIGTERM, then every scored record is in the log."""
    settings = service_settings(registered.settings, tmp_path)
    write_routing(settings, champion_version=registered.champion)
    port = free_port()
    process = start_cli_server(settings, port, workers=2, log_path=tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:

        def all_workers_ready() -> bool:
            try:
                # Fresh connections reach both workers, and every one of them must report ready.
                return all(httpx.get(f"{url}/readyz").status_code == 200 for _ in range(20))
            except httpx.HTTPError:
                return False

        wait_until(all_workers_ready, timeout_s=120, what="both workers to load the model")
        scored = 0
        features = features_of(registered.frame.iloc[0])
        for i in range(300):
            body = {"entity_id": str(i), "features": features}
            response = httpx.post(f"{url}/v1/models/{MODEL}/score", json=body)
            assert response.status_code == 200, response.text
            scored += 1
        batch = {"records": [{"entity_id": f"b{i}", "features": features} for i in range(40)]}
        response = httpx.post(f"{url}/v1/models/{MODEL}/score/batch", json=batch)
        assert response.status_code == 200
        scored += 40

        metrics = httpx.get(f"{url}/metrics").text
        observed = _metric_total(metrics, "mlp_scoring_request_duration_seconds_count", model=MODEL)
        assert observed == scored  # merged over both workers
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=120)
    log_text = (tmp_path / "serve.log").read_text()
    assert exit_code == 0, log_text
    engine = get_engine(settings.warehouse_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()
    assert rows == scored, log_text
