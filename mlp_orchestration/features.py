"""Feature snapshots: point-in-time slices of the warehouse, stored as Parquet by content hash.

A snapshot holds every transaction whose event time falls in the spec's training, validation
and holdout windows and nothing at or after the cut-off (``as_of``). Its hash covers the values
only, so the same rows give the same hash whenever and wherever they are read.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import DataVerificationError, NotFoundError
from mlp_orchestration.hashing import frame_checksum
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import feature_snapshots, transactions, utcnow

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "holdout")


@dataclass(frozen=True)
class SnapshotRecord:
    """A stored snapshot, as recorded in the ``feature_snapshots`` catalog."""

    model: str
    snapshot_hash: str
    path: str
    rows: int
    positives: int
    as_of: datetime
    windows: dict[str, tuple[str, str]]
    reused: bool = False


def read_window(engine: Engine, spec: ModelSpec, start: datetime, end: datetime) -> pd.DataFrame:
    """Read the spec's columns for transactions with ``start <= event_time < end``."""
    columns = [
        transactions.c.transaction_id.label(spec.entity_key),
        transactions.c.event_time.label(spec.event_time),
        *[transactions.c[name] for name in spec.feature_names],
        transactions.c[spec.label],
    ]
    query = (
        sa.select(*columns)
        .where(transactions.c.event_time >= start, transactions.c.event_time < end)
        .order_by(transactions.c.transaction_id)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame[spec.event_time] = pd.to_datetime(frame[spec.event_time], utc=True)
    frame[spec.entity_key] = frame[spec.entity_key].astype("int64")
    frame[spec.label] = frame[spec.label].astype("int64")
    for name in spec.feature_names:
        frame[name] = frame[name].astype("float64")
    return frame


def build_snapshot(
    engine: Engine, spec: ModelSpec, *, as_of: datetime | None = None
) -> tuple[pd.DataFrame, dict[str, tuple[datetime, datetime]]]:
    """Read the point-in-time slice covering all three windows ending at ``as_of``.

    Raises:
        DataVerificationError: a window holds no rows, so the cut-off is outside the data.
    """
    bounds = spec.windows.bounds(as_of)
    start, end = bounds["training"][0], bounds["holdout"][1]
    frame = read_window(engine, spec, start, end)
    times = frame[spec.event_time]
    for split, (split_start, split_end) in bounds.items():
        count = int(((times >= split_start) & (times < split_end)).sum())
        if count == 0:
            raise DataVerificationError(
                f"the {split} window {split_start.isoformat()} to {split_end.isoformat()} of "
                f"model {spec.name!r} holds no transactions; choose an as_of within the loaded "
                "data (run the transactions asset first) or change the spec's windows"
            )
    return frame, bounds


def split_frame(
    frame: pd.DataFrame, spec: ModelSpec, bounds: dict[str, tuple[datetime, datetime]]
) -> dict[str, pd.DataFrame]:
    """Cut a snapshot into its time windows."""
    times = frame[spec.event_time]
    return {
        split: frame[(times >= start) & (times < end)].reset_index(drop=True)
        for split, (start, end) in bounds.items()
    }


def store_snapshot(
    settings: Settings,
    engine: Engine,
    spec: ModelSpec,
    frame: pd.DataFrame,
    bounds: dict[str, tuple[datetime, datetime]],
) -> SnapshotRecord:
    """Write the snapshot as Parquet under its hash and record it; a repeat reuses both."""
    snapshot_hash = frame_checksum(frame)
    windows = {split: (a.isoformat(), b.isoformat()) for split, (a, b) in bounds.items()}
    as_of = bounds["holdout"][1]
    path = settings.snapshots_dir / spec.name / f"{snapshot_hash}.parquet"
    existing = find_snapshot(engine, spec.name, snapshot_hash)
    if existing is not None and Path(existing.path).is_file():
        return SnapshotRecord(**{**existing.__dict__, "reused": True})
    _write_parquet_atomically(frame, path)
    record = SnapshotRecord(
        model=spec.name,
        snapshot_hash=snapshot_hash,
        path=str(path),
        rows=len(frame),
        positives=int(frame[spec.label].sum()),
        as_of=as_of,
        windows=windows,
    )
    with engine.begin() as conn:
        if existing is None:
            conn.execute(
                feature_snapshots.insert().values(
                    model=record.model,
                    snapshot_hash=record.snapshot_hash,
                    path=record.path,
                    rows=record.rows,
                    positives=record.positives,
                    as_of=record.as_of,
                    windows=record.windows,
                    created_at=utcnow(),
                )
            )
        else:
            conn.execute(
                feature_snapshots.update()
                .where(feature_snapshots.c.id == existing_id(conn, spec.name, snapshot_hash))
                .values(path=record.path)
            )
    logger.info("snapshot %s of %s: %d rows at %s", snapshot_hash[:12], spec.name, len(frame), path)
    return record


def existing_id(conn: sa.Connection, model: str, snapshot_hash: str) -> int:
    return conn.execute(
        sa.select(feature_snapshots.c.id).where(
            feature_snapshots.c.model == model, feature_snapshots.c.snapshot_hash == snapshot_hash
        )
    ).scalar_one()


def find_snapshot(engine: Engine, model: str, snapshot_hash: str) -> SnapshotRecord | None:
    query = sa.select(feature_snapshots).where(
        feature_snapshots.c.model == model, feature_snapshots.c.snapshot_hash == snapshot_hash
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return SnapshotRecord(
        model=row.model,
        snapshot_hash=row.snapshot_hash,
        path=row.path,
        rows=row.rows,
        positives=row.positives,
        as_of=row.as_of,
        windows={k: tuple(v) for k, v in row.windows.items()},
    )


def load_snapshot(engine: Engine, model: str, snapshot_hash: str) -> pd.DataFrame:
    """Read a stored snapshot and check it still has the recorded hash.

    Raises:
        NotFoundError: the snapshot is not in the catalog or its file is gone.
        DataVerificationError: the file's content no longer matches its hash.
    """
    record = find_snapshot(engine, model, snapshot_hash)
    if record is None:
        raise NotFoundError(f"snapshot {snapshot_hash} of model {model!r} is not in the catalog")
    path = Path(record.path)
    if not path.is_file():
        raise NotFoundError(
            f"snapshot {snapshot_hash} of model {model!r} is recorded at {path}, which is gone; "
            "materialize the feature_snapshot asset again for the same as_of to rebuild it"
        )
    frame = pd.read_parquet(path)
    actual = frame_checksum(frame)
    if actual != snapshot_hash:
        raise DataVerificationError(
            f"snapshot file {path} has hash {actual[:12]}..., not {snapshot_hash[:12]}...; it "
            "was changed after it was written. Delete it and materialize feature_snapshot again."
        )
    return frame


def _write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    os.close(handle)
    try:
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
