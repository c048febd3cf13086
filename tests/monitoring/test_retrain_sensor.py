"""The retrain-on-drift sensor against a real Dagster instance, one scenario per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from assets.monitoring import to_metadata
from mlp_orchestration import keys
from mlp_orchestration.monitoring.drift import (
    STATUS_INSUFFICIENT,
    STATUS_OK,
    ColumnDrift,
    DriftFigures,
    DriftWindow,
)
from mlp_orchestration.monitoring.retrain_policy import RetrainCursor
from mlp_orchestration.monitoring.window import WindowData
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.settings import get_settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import alert_log, get_engine
from sensors.retrain import build_retrain_on_drift_sensor

DAY_TWO = datetime(2013, 9, 2, tzinfo=UTC)


def _figures(status: str, drifted: bool) -> DriftFigures:
    if status == STATUS_INSUFFICIENT:
        return DriftFigures(
            status=status, rows=120, reference_rows=48_000, min_rows=500, share_threshold=0.3
        )
    score = 0.4 if drifted else 0.02
    columns = tuple(
        ColumnDrift(name, "wasserstein", 0.1, score, drifted) for name in ("V1", "V2", "V3")
    )
    return DriftFigures(
        status=status,
        rows=5_000,
        reference_rows=48_000,
        min_rows=500,
        share_threshold=0.3,
        columns=columns,
        drift_share=1.0 if drifted else 0.0,
        dataset_drift=drifted,
    )


def report(
    instance: dg.DagsterInstance,
    spec: ModelSpec,
    hour: int,
    *,
    drifted: bool = True,
    status: str = STATUS_OK,
) -> int:
    """Record a drift_report materialization like the asset's and return its event id."""
    start = DAY_TWO + timedelta(hours=hour)
    window = DriftWindow(
        model=spec.name,
        window_start=start,
        window_end=start + timedelta(hours=1),
        figures=_figures(status, drifted),
        reference_version="1",
        reference_hash="abc",
        computed_at=datetime.now(UTC),
        data=WindowData(start, start, pd.DataFrame(), np.empty(0)),
    )
    key = keys.asset_key(spec.name, keys.DRIFT_REPORT)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=key,
            partition=f"2013-09-02-{hour:02d}:00",
            metadata=to_metadata(window.as_metadata()),
        )
    )
    return instance.fetch_materializations(key, limit=1).records[0].storage_id


def evaluate(instance: dg.DagsterInstance, spec: ModelSpec, cursor: str | None):
    sensor = build_retrain_on_drift_sensor(spec)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={keys.RESOURCE_KEY: MlpResource()}
    )
    return sensor.evaluate_tick(context)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def first_breach(instance: dg.DagsterInstance, spec: ModelSpec):
    for hour in range(2):
        report(instance, spec, hour)
    last = report(instance, spec, 2)
    return last, evaluate(instance, spec, None)


def test_first_breach_requests_one_run(instance, fraud_spec: ModelSpec):
    last, result = first_breach(instance, fraud_spec)

    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == f"fraud-drift-2013-09-02-02:00-event-{last}"
    assert request.tags["mlp/drift_partition"] == "2013-09-02-02:00"
    assert request.tags["mlp/drift_report_event"] == str(last)
    assert "3 back-to-back windows" in request.tags["mlp/reason"]
    snapshot_config = request.run_config["ops"]["fraud__feature_snapshot"]["config"]
    assert snapshot_config == {"as_of": "2013-09-02T03:00:00+00:00"}
    cursor = RetrainCursor.from_json(result.cursor)
    assert cursor.last_storage_id == last
    assert cursor.last_run_key == request.run_key
    assert cursor.last_requested_at is not None
    with get_engine(get_settings().warehouse_url).connect() as conn:
        kinds = conn.execute(sa.select(alert_log.c.kind, alert_log.c.model)).all()
    assert [(kind.lower(), model) for kind, model in kinds] == [("drift_detected", "fraud")]


def test_repeat_inside_cooldown_skips(instance, fraud_spec: ModelSpec):
    _, first = first_breach(instance, fraud_spec)
    newer = report(instance, fraud_spec, 3)

    result = evaluate(instance, fraud_spec, first.cursor)

    assert result.run_requests == []
    assert "cooldown of 6:00:00" in result.skip_message
    cursor = RetrainCursor.from_json(result.cursor)
    assert cursor.last_storage_id == newer
    assert cursor.last_requested_at == RetrainCursor.from_json(first.cursor).last_requested_at


def test_new_breach_after_cooldown_requests_new_run(instance, fraud_spec: ModelSpec):
    _, first = first_breach(instance, fraud_spec)
    earlier = RetrainCursor.from_json(first.cursor)
    expired = RetrainCursor(
        last_storage_id=earlier.last_storage_id,
        last_requested_at=datetime.now(UTC) - timedelta(hours=7),
        last_run_key=earlier.last_run_key,
    )
    newer = report(instance, fraud_spec, 3)

    result = evaluate(instance, fraud_spec, expired.to_json())

    assert [request.run_key for request in result.run_requests] == [
        f"fraud-drift-2013-09-02-03:00-event-{newer}"
    ]
    assert result.run_requests[0].run_key != earlier.last_run_key
    cursor = RetrainCursor.from_json(result.cursor)
    assert cursor.last_storage_id == newer
    assert cursor.last_run_key == result.run_requests[0].run_key


def test_insufficient_data_window_skips(instance, fraud_spec: ModelSpec):
    report(instance, fraud_spec, 0)
    report(instance, fraud_spec, 1)
    small = report(instance, fraud_spec, 2, status=STATUS_INSUFFICIENT)

    result = evaluate(instance, fraud_spec, None)

    assert result.run_requests == []
    assert result.skip_message.startswith("window 2013-09-02-02:00 has no verdict")
    assert "insufficient data" in result.skip_message
    assert RetrainCursor.from_json(result.cursor).last_storage_id == small


def test_recovery_skips_and_advances_cursor(instance, fraud_spec: ModelSpec):
    _, first = first_breach(instance, fraud_spec)
    calm = report(instance, fraud_spec, 3, drifted=False)

    result = evaluate(instance, fraud_spec, first.cursor)

    assert result.run_requests == []
    assert result.skip_message.startswith("no drift in window 2013-09-02-03:00")
    cursor = RetrainCursor.from_json(result.cursor)
    assert cursor.last_storage_id == calm
    assert cursor.last_run_key == RetrainCursor.from_json(first.cursor).last_run_key
