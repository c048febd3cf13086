"""Builders shared by the monitoring tests: real ULB rows, a small booster, log rows."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from mlp_orchestration import registry
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import (
    ULB_FEATURE_COLUMNS,
    feature_snapshots,
    get_engine,
    label_feedback,
    prediction_log,
)

MODEL = "fraud"
FEATURES = list(ULB_FEATURE_COLUMNS)
ULB_START = datetime(2013, 9, 1, tzinfo=UTC)


def with_event_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Add transaction_id (row position) and event_time (2013-09-01 + Time seconds)."""
    result = frame.copy()
    result["transaction_id"] = np.arange(len(frame), dtype=np.int64)
    result["event_time"] = pd.Timestamp(ULB_START) + pd.to_timedelta(frame["Time"], unit="s")
    return result


def train_booster(frame: pd.DataFrame, *, rounds: int = 30, seed: int = 1) -> lgb.Booster:
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_child_samples": 20,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(frame[FEATURES], label=frame["Class"], feature_name=FEATURES)
    return lgb.train(params, data, num_boost_round=rounds)


def register_champion(
    settings: Settings,
    booster: lgb.Booster,
    *,
    snapshot_hash: str,
    as_of: str,
    threshold: float | None,
) -> str:
    """Log and register the booster, tag it and give it the champion alias."""
    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, MODEL, settings)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=MODEL)
    version = str(info.registered_model_version)
    tags = {"snapshot_hash": snapshot_hash, "as_of": as_of}
    if threshold is not None:
        tags["decision_threshold"] = str(threshold)
    registry.set_version_tags(client, MODEL, version, tags)
    registry.set_alias(client, MODEL, registry.CHAMPION, version)
    return version


def write_snapshot(settings: Settings, frame: pd.DataFrame, *, snapshot_hash: str) -> Path:
    """Write a snapshot Parquet file and its feature_snapshots row."""
    path = settings.home_dir / "snapshots" / f"{snapshot_hash}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[["transaction_id", "event_time", *FEATURES, "Class"]].to_parquet(path, index=False)
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(
            feature_snapshots.insert().values(
                model=MODEL,
                snapshot_hash=snapshot_hash,
                path=str(path),
                rows=len(frame),
                positives=int(frame["Class"].sum()),
                as_of=datetime(2013, 9, 2, tzinfo=UTC),
                windows={},
                created_at=datetime.now(UTC),
            )
        )
    return path


def log_predictions(
    settings: Settings,
    frame: pd.DataFrame,
    model: NativeModel,
    *,
    version: str,
    arm: str = "champion",
    logged_at: datetime | None = None,
    status: int = 200,
) -> None:
    """Score each row through the native single-row path and write it to the prediction log."""
    rows = []
    for record in frame.to_dict("records"):
        features = {name: float(record[name]) for name in FEATURES}
        started = time.perf_counter()
        score = model.predict_features(features) if status == 200 else None
        latency_ms = (time.perf_counter() - started) * 1000
        rows.append(
            {
                "request_id": uuid.uuid4().hex,
                "logged_at": logged_at or datetime.now(UTC),
                "event_time": record["event_time"].to_pydatetime(),
                "model": MODEL,
                "entity_id": str(record["transaction_id"]),
                "features": features,
                "score": score,
                "model_version": version,
                "arm": arm,
                "routing_version": 1,
                "latency_ms": latency_ms,
                "status": status,
                "error": None if status == 200 else "scoring failed",
            }
        )
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(prediction_log.insert(), rows)


def write_labels(settings: Settings, frame: pd.DataFrame) -> None:
    rows = [
        {
            "model": MODEL,
            "entity_id": str(record["transaction_id"]),
            "label": int(record["Class"]),
            "event_time": record["event_time"].to_pydatetime(),
            "arrived_at": record["event_time"].to_pydatetime() + timedelta(hours=2),
        }
        for record in frame.to_dict("records")
    ]
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(label_feedback.insert(), rows)
