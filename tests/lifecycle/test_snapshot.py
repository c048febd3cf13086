"""Feature snapshots: point-in-time windows, content hashes and tamper detection."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlp_orchestration.errors import DataVerificationError, NotFoundError
from mlp_orchestration.features import build_snapshot, load_snapshot, store_snapshot
from mlp_orchestration.hashing import frame_checksum
from mlp_orchestration.warehouse import get_engine


def test_snapshot_holds_only_its_windows(loaded_settings, fraud_spec):
    frame, bounds = build_snapshot(get_engine(loaded_settings.warehouse_url), fraud_spec)
    assert frame["event_time"].min() >= bounds["training"][0]
    assert frame["event_time"].max() < fraud_spec.windows.as_of
    assert len(frame) == 144_786
    assert int(frame["Class"].sum()) == 281


def test_same_input_gives_same_hash(loaded_settings, fraud_spec):
    engine = get_engine(loaded_settings.warehouse_url)
    first_frame, bounds = build_snapshot(engine, fraud_spec)
    second_frame, _ = build_snapshot(engine, fraud_spec)
    first = store_snapshot(loaded_settings, engine, fraud_spec, first_frame, bounds)
    second = store_snapshot(loaded_settings, engine, fraud_spec, second_frame, bounds)
    assert first.snapshot_hash == second.snapshot_hash
    assert second.reused
    assert frame_checksum(pd.read_parquet(first.path)) == first.snapshot_hash


def test_later_cut_off_gives_other_hash(loaded_settings, fraud_spec):
    engine = get_engine(loaded_settings.warehouse_url)
    early, _ = build_snapshot(engine, fraud_spec)
    later, _ = build_snapshot(engine, fraud_spec, as_of=datetime(2013, 9, 2, 6, tzinfo=UTC))
    assert frame_checksum(early) != frame_checksum(later)


def test_hash_changes_with_one_value(loaded_settings, fraud_spec):
    frame, _ = build_snapshot(get_engine(loaded_settings.warehouse_url), fraud_spec)
    changed = frame.copy()
    changed.loc[10, "Amount"] += 0.01
    assert frame_checksum(changed) != frame_checksum(frame)


def test_hash_ignores_display_timezone(loaded_settings, fraud_spec):
    frame, _ = build_snapshot(get_engine(loaded_settings.warehouse_url), fraud_spec)
    shown_elsewhere = frame.copy()
    shown_elsewhere["event_time"] = shown_elsewhere["event_time"].dt.tz_convert("Europe/Brussels")
    assert frame_checksum(shown_elsewhere) == frame_checksum(frame)


def test_cut_off_outside_data_rejected(loaded_settings, fraud_spec):
    with pytest.raises(
        DataVerificationError,
        match=r"training window 2013-12-31T00:00:00\+00:00 .* holds no transactions",
    ):
        build_snapshot(
            get_engine(loaded_settings.warehouse_url),
            fraud_spec,
            as_of=datetime(2014, 1, 1, tzinfo=UTC),
        )


def test_tampered_snapshot_detected(loaded_settings, fraud_spec, tmp_path):
    engine = get_engine(loaded_settings.warehouse_url)
    frame, bounds = build_snapshot(engine, fraud_spec, as_of=datetime(2013, 9, 2, 3, tzinfo=UTC))
    record = store_snapshot(loaded_settings, engine, fraud_spec, frame, bounds)
    tampered = frame.copy()
    tampered.loc[0, "V1"] = 99.0
    tampered.to_parquet(record.path, index=False)
    with pytest.raises(DataVerificationError, match=r"was changed after it was written"):
        load_snapshot(engine, "fraud", record.snapshot_hash)
    Path(record.path).unlink()
    with pytest.raises(NotFoundError, match=r"which is gone; materialize the feature_snapshot"):
        load_snapshot(engine, "fraud", record.snapshot_hash)


def test_unknown_snapshot_not_found(loaded_settings):
    with pytest.raises(NotFoundError, match=r"snapshot abc of model 'fraud' is not in the catalog"):
        load_snapshot(get_engine(loaded_settings.warehouse_url), "fraud", "abc")
