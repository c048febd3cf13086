"""Idempotent load of a verified dataset into the warehouse's ``transactions`` table."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tqdm import tqdm

from mlp_orchestration.data import ulb
from mlp_orchestration.errors import DataVerificationError
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import ULB_FEATURE_COLUMNS, dataset_loads, transactions, utcnow

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    rows: int
    positives: int
    inserted: int
    checksum: str
    source: str
    first_event: str
    last_event: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ingest_ulb(settings: Settings, engine: Engine) -> IngestResult:
    """Load the verified ULB dataset into ``transactions``; a repeat run inserts nothing.

    When the warehouse already holds a complete, verified load with the same start time, the
    dataset copy is not read again (nor downloaded). The load runs in one transaction, so an
    interrupted run leaves the table as it was. When another process loads the same rows at the
    same moment, this run waits for it through the database and then reports its load.
    """
    present = _verified_load(settings, engine)
    if present is not None:
        return present
    try:
        return _load(settings, engine)
    except sa.exc.IntegrityError:
        # Two first loads at once: the other transaction committed the same primary keys first.
        present = _verified_load(settings, engine)
        if present is None:
            raise
        logger.info("another process loaded %s at the same time; using its load", ulb.DATASET)
        return present


def _load_key(settings: Settings) -> str:
    return f"{ulb.DATASET}@{settings.ulb_start.isoformat()}"


def _verified_load(settings: Settings, engine: Engine) -> IngestResult | None:
    """The warehouse's existing load, if it is complete, verified and on the same start time."""
    with engine.connect() as conn:
        load = conn.execute(
            sa.select(dataset_loads).where(dataset_loads.c.dataset == ulb.DATASET)
        ).first()
        if load is None or load.checksum != ulb.EXPECTED_CHECKSUM:
            return None
        _check_same_start(load.source, _load_key(settings))
        count, first, last = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.min(transactions.c.event_time),
                sa.func.max(transactions.c.event_time),
            )
        ).one()
    if count != ulb.EXPECTED_ROWS:
        return None
    source = load.source.rsplit(" ", 1)[0]
    logger.info("transactions: %d verified rows already loaded from %s", count, source)
    return IngestResult(
        dataset=ulb.DATASET,
        rows=int(count),
        positives=int(load.positives),
        inserted=0,
        checksum=load.checksum,
        source=source,
        first_event=_as_utc(first).isoformat(),
        last_event=_as_utc(last).isoformat(),
    )


def _as_utc(value: datetime | str) -> datetime:
    # min() and max() keep the column's type on both backends; the text case is a fallback.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _load(settings: Settings, engine: Engine) -> IngestResult:
    loaded = ulb.load(settings)
    frame = ulb.with_event_time(loaded.frame, settings.ulb_start)
    load_key = _load_key(settings)
    positives = int(frame["Class"].sum())

    with engine.begin() as conn:
        previous = conn.execute(
            sa.select(dataset_loads).where(dataset_loads.c.dataset == ulb.DATASET)
        ).first()
        present = conn.execute(sa.select(sa.func.count()).select_from(transactions)).scalar()
        if previous is not None:
            _check_same_start(previous.source, load_key)
        inserted = 0
        if previous is None or previous.checksum != loaded.checksum or present != len(frame):
            inserted = _insert_missing(conn, frame)
            conn.execute(sa.delete(dataset_loads).where(dataset_loads.c.dataset == ulb.DATASET))
            conn.execute(
                dataset_loads.insert().values(
                    dataset=ulb.DATASET,
                    rows=len(frame),
                    positives=positives,
                    checksum=loaded.checksum,
                    source=f"{loaded.source} {load_key}",
                    loaded_at=utcnow(),
                )
            )
        total = conn.execute(sa.select(sa.func.count()).select_from(transactions)).scalar()
    if total != len(frame):
        raise DataVerificationError(
            f"transactions holds {total:,} rows after the load, expected {len(frame):,}; "
            "it contains rows from another dataset. Use an empty MLP_DATABASE_URL."
        )
    logger.info("transactions: %d rows, %d inserted by this run", total, inserted)
    return IngestResult(
        dataset=ulb.DATASET,
        rows=int(total),
        positives=positives,
        inserted=inserted,
        checksum=loaded.checksum,
        source=loaded.source,
        first_event=frame["event_time"].iloc[0].isoformat(),
        last_event=frame["event_time"].iloc[-1].isoformat(),
    )


def _check_same_start(previous_source: str, load_key: str) -> None:
    previous_key = previous_source.rsplit(" ", 1)[-1]
    if previous_key != load_key:
        raise DataVerificationError(
            f"the warehouse was loaded with {previous_key}, but MLP_ULB_START now gives "
            f"{load_key}; event times would disagree with existing snapshots. Set MLP_ULB_START "
            "back, or use a new MLP_HOME or MLP_DATABASE_URL."
        )


def _insert_missing(conn: sa.Connection, frame: pd.DataFrame) -> int:
    existing = {row[0] for row in conn.execute(sa.select(transactions.c.transaction_id))}
    todo = frame[~frame["transaction_id"].isin(existing)] if existing else frame
    if todo.empty:
        return 0
    columns = ["transaction_id", "event_time", "Time", *ULB_FEATURE_COLUMNS, "Class"]
    records = todo[columns].rename(columns={"Time": "time_seconds"})
    with tqdm(total=len(records), unit="rows", desc="load transactions") as bar:
        for start in range(0, len(records), _CHUNK_ROWS):
            chunk = records.iloc[start : start + _CHUNK_ROWS]
            # pandas Timestamps are datetime subclasses, so UtcDateTime binds them as they are.
            rows = chunk.to_dict("records")
            conn.execute(transactions.insert(), rows)
            bar.update(len(rows))
    return len(records)
