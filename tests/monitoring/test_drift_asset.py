"""The drift_report asset and compute_window against a real MLflow champion and prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.monitoring import build_monitoring_assets
from mlp_orchestration import keys
from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.monitoring.drift import STATUS_INSUFFICIENT, STATUS_OK, compute_window
from mlp_orchestration.monitoring.reference import load_champion_reference
from mlp_orchestration.monitoring.summary import drift_and_retrain_summary
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.settings import Settings, get_settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import drift_metrics, get_engine
from sensors.retrain import build_retrain_on_drift_sensor

from .conftest import World

HOUR_ZERO = datetime(2013, 9, 2, tzinfo=UTC)


def _drift_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    key = keys.asset_key(spec.name, keys.DRIFT_REPORT)
    return next(asset for asset in build_monitoring_assets(spec) if asset.key == key)


def _rows(settings: Settings) -> list[sa.Row]:
    with get_engine(settings.warehouse_url).connect() as conn:
        return conn.execute(sa.select(drift_metrics).order_by(drift_metrics.c.window_start)).all()


def _materialization(instance: dg.DagsterInstance, spec: ModelSpec, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=keys.asset_key(spec.name, keys.DRIFT_REPORT), asset_partitions=[partition]
        ),
        limit=1,
    ).records
    return records[0].asset_materialization


def test_compute_window_upserts_one_row(world_env: World, fraud_spec: ModelSpec):
    settings = get_settings()
    engine = get_engine(settings.warehouse_url)
    reference = load_champion_reference(settings, engine, fraud_spec)

    first = compute_window(
        fraud_spec,
        engine=engine,
        reference=reference,
        window_start=HOUR_ZERO,
        window_end=HOUR_ZERO + timedelta(hours=1),
    )
    compute_window(
        fraud_spec,
        engine=engine,
        reference=reference,
        window_start=HOUR_ZERO,
        window_end=HOUR_ZERO + timedelta(hours=1),
    )

    rows = [row for row in _rows(settings) if row.window_start == HOUR_ZERO]
    assert len(rows) == 1
    assert rows[0].rows == len(world_env.hours[0])
    assert rows[0].status == STATUS_OK
    assert rows[0].reference_hash == reference.snapshot_hash
    assert sorted(rows[0].drifted_columns) == sorted(first.figures.drifted_columns)
    assert first.figures.score is not None
    assert reference.path.is_file()
    assert reference.version == world_env.version
    # Out-of-sample rows only: the snapshot's last 8 hours (validation and holdout windows).
    assert 0 < len(reference.scores()) < reference.rows


def test_reference_without_champion_names_fix(fraud_spec: ModelSpec, settings: Settings):
    engine = get_engine(settings.warehouse_url)

    with pytest.raises(NotFoundError, match="has no version with the MLflow alias 'champion'"):
        load_champion_reference(settings, engine, fraud_spec)


def test_drift_report_asset_links_html_report(world_env: World, fraud_spec: ModelSpec):
    partition = "2013-09-02-01:00"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_drift_asset(fraud_spec)],
            instance=instance,
            partition_key=partition,
            resources={keys.RESOURCE_KEY: MlpResource()},
        )
        materialization = _materialization(instance, fraud_spec, partition)

    assert result.success
    metadata = {name: value.value for name, value in materialization.metadata.items()}
    report = Path(metadata["report"])
    assert report.is_file()
    assert report.parent == get_settings().reports_dir / "fraud" / "drift"
    assert metadata["report_url"] == report.as_uri()
    html = report.read_text(encoding="utf-8")
    assert "column 'V1'" in html
    assert "column 'score'" in html
    assert "PSI, 10 reference-quantile bins" in html
    assert metadata["status"] == STATUS_OK
    assert metadata["rows"] == len(world_env.hours[1])
    assert metadata["reference_version"] == world_env.version
    assert set(metadata["drifted_columns"]) <= set(metadata["column_scores"])
    row = next(row for row in _rows(get_settings()) if row.window_start.hour == 1)
    assert row.report_path == str(report)


def test_drift_report_asset_small_window_has_no_report(world_env: World, fraud_spec: ModelSpec):
    partition = "2013-09-02-03:00"
    with dg.instance_for_test() as instance:
        dg.materialize(
            [_drift_asset(fraud_spec)],
            instance=instance,
            partition_key=partition,
            resources={keys.RESOURCE_KEY: MlpResource()},
        )
        materialization = _materialization(instance, fraud_spec, partition)

    metadata = {name: value.value for name, value in materialization.metadata.items()}
    assert metadata["status"] == STATUS_INSUFFICIENT
    assert metadata["rows"] == 100
    assert metadata["drift_detected"] is None
    assert "report" not in metadata
    row = next(row for row in _rows(get_settings()) if row.window_start.hour == 3)
    assert row.status == STATUS_INSUFFICIENT
    assert row.report_path is None


def test_summary_after_three_drifted_windows(world_env: World, fraud_spec: ModelSpec):
    """Day 2's night hours differ from day 1 on most columns: the sensor requests a retrain."""
    partitions = ["2013-09-02-00:00", "2013-09-02-01:00", "2013-09-02-02:00"]
    sensor = build_retrain_on_drift_sensor(fraud_spec)
    with dg.instance_for_test() as instance:
        summary = drift_and_retrain_summary(
            _drift_asset(fraud_spec),
            sensor,
            instance=instance,
            model=fraud_spec.name,
            partition_keys=partitions,
            resources={keys.RESOURCE_KEY: MlpResource()},
        )

    assert summary.decision == "retrain"
    assert summary.triggering_partition == "2013-09-02-02:00"
    assert summary.run_key.startswith("fraud-drift-2013-09-02-02:00-event-")
    assert "3 back-to-back windows" in summary.reason
    assert [window["partition"] for window in summary.windows] == partitions
    assert all(window["drift_detected"] for window in summary.windows)
    stored = {row.window_start.hour for row in _rows(get_settings()) if row.report_path}
    assert {0, 1, 2} <= stored
