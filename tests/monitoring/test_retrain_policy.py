"""The retrain decision as a plain function, one scenario at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.monitoring.retrain_policy import (
    RETRAIN,
    SKIP,
    DriftReportRecord,
    RetrainCursor,
    decide_retrain,
)

START = datetime(2013, 9, 2, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
COOLDOWN = timedelta(hours=6)


def record(hour: int, storage_id: int, *, drifted: bool | None = True, status: str = "ok"):
    return DriftReportRecord(
        storage_id=storage_id,
        partition_key=f"2013-09-02-{hour:02d}:00",
        window_start=START + timedelta(hours=hour),
        window_end=START + timedelta(hours=hour + 1),
        status=status,
        drift_detected=drifted if status == "ok" else None,
        drift_share=0.8 if drifted else 0.0,
        reason="test window",
    )


def decide(records, cursor=RetrainCursor(), **overrides):
    values = {"consecutive_windows": 3, "cooldown": COOLDOWN, "now": NOW}
    values.update(overrides)
    return decide_retrain("fraud", records, cursor, **values)


def test_three_drifted_windows_request_retrain():
    decision = decide([record(0, 10), record(1, 11), record(2, 12)])

    assert decision.decision == RETRAIN
    assert decision.run_key == "fraud-drift-2013-09-02-02:00-event-12"
    assert decision.triggering_partition == "2013-09-02-02:00"
    assert decision.cursor.last_storage_id == 12
    assert decision.cursor.last_requested_at == NOW
    assert decision.cursor.last_run_key == decision.run_key


def test_two_drifted_windows_are_not_enough():
    decision = decide([record(0, 10, drifted=False), record(1, 11), record(2, 12)])

    assert decision.decision == SKIP
    assert decision.reason.startswith("drift in 2 back-to-back window(s)")
    assert decision.cursor.last_storage_id == 12
    assert decision.cursor.last_requested_at is None


def test_gap_between_windows_breaks_streak():
    decision = decide([record(0, 10), record(2, 11), record(3, 12)])

    assert decision.decision == SKIP
    assert "drift in 2 back-to-back" in decision.reason


def test_insufficient_window_inside_streak_breaks_it():
    decision = decide([record(0, 10), record(1, 11, status="insufficient_data"), record(2, 12)])

    assert decision.decision == SKIP
    assert "drift in 1 back-to-back" in decision.reason


def test_newest_report_of_partition_wins():
    records = [record(0, 10), record(1, 11, drifted=False), record(1, 13), record(2, 12)]

    decision = decide(records)

    assert decision.decision == RETRAIN
    assert decision.cursor.last_storage_id == 13


def test_no_new_report_keeps_cursor():
    cursor = RetrainCursor(last_storage_id=12)

    decision = decide([record(0, 10), record(1, 11), record(2, 12)], cursor)

    assert decision.decision == SKIP
    assert decision.reason == "no new drift report after event 12"
    assert decision.cursor == cursor


def test_cooldown_counts_runs_from_any_trigger():
    decision = decide(
        [record(0, 10), record(1, 11), record(2, 12)],
        last_retrain_at=NOW - timedelta(hours=1),
    )

    assert decision.decision == SKIP
    assert "cooldown of 6:00:00 lasts until 2026-01-01T17:00:00+00:00" in decision.reason


def test_same_report_never_triggers_twice():
    first = decide([record(0, 10), record(1, 11), record(2, 12)])
    cursor = RetrainCursor(
        last_storage_id=11,
        last_requested_at=NOW - 2 * COOLDOWN,
        last_run_key=first.run_key,
    )

    again = decide([record(0, 10), record(1, 11), record(2, 12)], cursor)

    assert again.decision == SKIP
    assert again.reason == f"report {first.run_key} already requested a retrain"


def test_cursor_round_trips_through_json():
    cursor = RetrainCursor(last_storage_id=5, last_requested_at=NOW, last_run_key="fraud-x")

    assert RetrainCursor.from_json(cursor.to_json()) == cursor
    assert RetrainCursor.from_json(None) == RetrainCursor()


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"last_storage_id": "x"}'])
def test_invalid_cursor_names_fix(text: str):
    with pytest.raises(ConfigurationError, match="clear the sensor's cursor"):
        RetrainCursor.from_json(text)


def test_record_without_window_metadata_names_fix():
    with pytest.raises(ConfigurationError, match="materialize the partition again"):
        DriftReportRecord.from_metadata(
            storage_id=3, partition_key="2013-09-02-00:00", metadata={"status": "ok"}
        )
