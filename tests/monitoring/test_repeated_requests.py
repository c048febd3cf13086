"""An entity scored more than once counts once in drift windows and delayed-label performance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mlp_orchestration.monitoring.performance import read_labelled_predictions
from mlp_orchestration.monitoring.window import read_window
from mlp_orchestration.warehouse import get_engine, label_feedback, prediction_log

START = datetime(2013, 9, 2, tzinfo=UTC)
END = START + timedelta(hours=1)


def _request(entity: str, version: str, score: float, logged_at: datetime) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "logged_at": logged_at,
        "event_time": START + timedelta(minutes=int(entity)),
        "model": "fraud",
        "entity_id": entity,
        "features": {"V1": score * 10},
        "score": score,
        "model_version": version,
        "arm": "champion",
        "routing_version": 1,
        "latency_ms": 0.2,
        "status": 200,
        "error": None,
    }


@pytest.fixture
def engine(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    now = datetime.now(UTC)
    first = [_request(str(i), "1", 0.1 * i, now) for i in range(4)]
    # Entities 0 and 1 scored again by the same version (a retry, or the traffic replayed),
    # and entity 2 scored again by version 2.
    again = [
        _request("0", "1", 0.05, now + timedelta(seconds=1)),
        _request("1", "1", 0.15, now + timedelta(seconds=1)),
        _request("2", "2", 0.9, now + timedelta(seconds=2)),
    ]
    labels = [
        {
            "model": "fraud",
            "entity_id": str(i),
            "label": i % 2,
            "event_time": START,
            "arrived_at": now,
        }
        for i in range(4)
    ]
    with engine.begin() as conn:
        conn.execute(prediction_log.insert(), first + again)
        conn.execute(label_feedback.insert(), labels)
    return engine


def test_drift_window_keeps_latest_request(engine):
    window = read_window(engine, model="fraud", feature_names=["V1"], start=START, end=END)

    assert window.rows == 4
    assert sorted(window.scores.round(2)) == [0.05, 0.15, 0.3, 0.9]
    assert sorted(window.features["V1"].round(1)) == [0.5, 1.5, 3.0, 9.0]


def test_performance_counts_entity_once(engine):
    frame = read_labelled_predictions(engine, "fraud", start=START, end=END)

    per_version = frame.groupby("model_version")["score"].apply(lambda s: sorted(s.round(2)))
    assert per_version["1"] == [0.05, 0.15, 0.2, 0.3]
    assert per_version["2"] == [0.9]
    assert list(frame.columns) == ["event_time", "model_version", "score", "label"]
