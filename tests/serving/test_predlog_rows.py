"""Prediction log rows read back through the table definition equal what was logged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.predlog import PredictionLogWriter, PredictionRecord
from mlp_orchestration.warehouse import get_engine, prediction_log


def _records(count: int) -> list[PredictionRecord]:
    logged = datetime(2026, 12, 4, 17, 0, 0, 123456, tzinfo=UTC)
    event = datetime(2013, 9, 2, 6, 0, 0, tzinfo=UTC)
    return [
        PredictionRecord(
            request_id=f"r{i}", logged_at=logged, event_time=event, model="fraud",
            entity_id=str(i), features={"V1": 0.5 * i, "Amount": None}, score=i / 1000,
            model_version="3", arm="canary" if i % 2 else "champion", routing_version=7,
            latency_ms=0.25, status=200 if i else 500, error=None if i else "boom",
        )
        for i in range(count)
    ]  # fmt: skip


def _write_and_check(url: str, count: int) -> None:
    engine = get_engine(url)
    writer = PredictionLogWriter(
        engine_provider=lambda: engine, metrics=ServingMetrics(), batch_size=500,
        buffer_size=10_000, flush_s=0.05, stop_timeout_s=10,
    )  # fmt: skip
    writer.start()
    records = _records(count)
    for record in records:
        writer.append(record)
    writer.stop()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(prediction_log).order_by(prediction_log.c.id)).all()
    assert len(rows) == count
    first, last = rows[0], rows[-1]
    assert first.logged_at == records[0].logged_at
    assert first.event_time == records[0].event_time
    assert first.features == {"V1": 0.0, "Amount": None}
    assert (first.status, first.error, first.score) == (500, "boom", 0.0)
    assert last.entity_id == str(count - 1)
    assert last.features["V1"] == pytest.approx(0.5 * (count - 1))
    assert last.arm == ("canary" if (count - 1) % 2 else "champion")
    assert last.routing_version == 7


@pytest.mark.parametrize("count", [1, 999, 2501])
def test_sqlite_rows_read_back_equal(tmp_path, count):
    _write_and_check(f"sqlite:///{tmp_path / 'warehouse.db'}", count)


@pytest.mark.postgres
def test_postgres_rows_read_back_equal(postgres_url):
    _write_and_check(postgres_url, 1201)
