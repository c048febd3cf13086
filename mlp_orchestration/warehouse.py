"""The tables this project owns, in SQLAlchemy Core, and the engine that reaches them.

One schema serves SQLite (the embedded default) and PostgreSQL (the services profile).
Times are stored as UTC without an offset and returned as aware UTC datetimes.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.settings import DATABASE_KINDS, DATABASE_URL_EXAMPLES, safe_url

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

ULB_FEATURE_COLUMNS = [f"V{i}" for i in range(1, 29)] + ["Amount"]


class UtcDateTime(sa.types.TypeDecorator):
    """A timestamp stored as naive UTC and read back as aware UTC on every backend."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_time", UtcDateTime, nullable=False, index=True),
    sa.Column("time_seconds", sa.Float, nullable=False),
    *[sa.Column(name, sa.Float, nullable=False) for name in ULB_FEATURE_COLUMNS],
    sa.Column("Class", sa.SmallInteger, nullable=False),
)

dataset_loads = sa.Table(
    "dataset_loads",
    metadata,
    sa.Column("dataset", sa.String(64), primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("positives", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("loaded_at", UtcDateTime, nullable=False),
)

feature_snapshots = sa.Table(
    "feature_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("snapshot_hash", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("positives", sa.BigInteger, nullable=False),
    sa.Column("as_of", UtcDateTime, nullable=False),
    sa.Column("windows", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("model", "snapshot_hash", name="uq_feature_snapshots_model_hash"),
)

routing_config = sa.Table(
    "routing_config",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("canary_version", sa.String(32), nullable=True),
    sa.Column("canary_share", sa.Float, nullable=False, default=0.0),
    sa.Column("shadow_versions", sa.JSON, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Compare-and-set rests on this constraint: two writers based on the same version both
    # try to insert version + 1, and the database lets exactly one of them through.
    sa.UniqueConstraint("model", "version", name="uq_routing_config_model_version"),
)

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("logged_at", UtcDateTime, nullable=False),
    sa.Column("event_time", UtcDateTime, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("entity_id", sa.String(128), nullable=False),
    sa.Column("features", sa.JSON, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("routing_version", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("status", sa.SmallInteger, nullable=False, default=200),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_prediction_log_model_event_time", "model", "event_time"),
    # Rollout guards read one routing version's rows per arm on every evaluation.
    sa.Index("ix_prediction_log_model_routing_version", "model", "routing_version", "arm"),
)

label_feedback = sa.Table(
    "label_feedback",
    metadata,
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("entity_id", sa.String(128), primary_key=True),
    sa.Column("label", sa.SmallInteger, nullable=False),
    sa.Column("event_time", UtcDateTime, nullable=False),
    sa.Column("arrived_at", UtcDateTime, nullable=False),
)

drift_metrics = sa.Table(
    "drift_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("window_start", UtcDateTime, nullable=False),
    sa.Column("window_end", UtcDateTime, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("drift_share", sa.Float, nullable=True),
    sa.Column("dataset_drift", sa.Boolean, nullable=True),
    sa.Column("drifted_columns", sa.JSON, nullable=False),
    sa.Column("column_scores", sa.JSON, nullable=False),
    sa.Column("score_drift", sa.Float, nullable=True),
    sa.Column("score_drifted", sa.Boolean, nullable=True),
    sa.Column("reference_hash", sa.String(64), nullable=True),
    sa.Column("report_path", sa.Text, nullable=True),
    sa.Column("computed_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("model", "window_start", name="uq_drift_metrics_model_window"),
)

performance_metrics = sa.Table(
    "performance_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("window_start", UtcDateTime, nullable=False),
    sa.Column("window_end", UtcDateTime, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("labelled", sa.BigInteger, nullable=False),
    sa.Column("positives", sa.BigInteger, nullable=False),
    sa.Column("label_coverage", sa.Float, nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("pr_auc", sa.Float, nullable=True),
    sa.Column("precision_at_alert_rate", sa.Float, nullable=True),
    sa.Column("recall_at_alert_rate", sa.Float, nullable=True),
    sa.Column("computed_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "model", "model_version", "window_start", name="uq_performance_metrics_window"
    ),
)

serving_health_metrics = sa.Table(
    "serving_health_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("window_start", UtcDateTime, nullable=False),
    sa.Column("window_end", UtcDateTime, nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("error_rate", sa.Float, nullable=False),
    sa.Column("p50_ms", sa.Float, nullable=True),
    sa.Column("p95_ms", sa.Float, nullable=True),
    sa.Column("p99_ms", sa.Float, nullable=True),
    sa.Column("availability", sa.Float, nullable=False),
    sa.Column("computed_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "model", "window_start", "model_version", "arm", name="uq_serving_health_window"
    ),
)

rollout_events = sa.Table(
    "rollout_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("candidate_version", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("breaches", sa.JSON, nullable=False),
    sa.Column("routing_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("decided_at", UtcDateTime, nullable=False),
)

rollout_approvals = sa.Table(
    "rollout_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("candidate_version", sa.String(32), nullable=False),
    # The routing version that started the rollout identifies it; one approval per rollout.
    sa.Column("rollout_started_version", sa.Integer, nullable=False),
    sa.Column("started_by", sa.String(128), nullable=False),
    sa.Column("approver", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("approved_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("model", "rollout_started_version", name="uq_rollout_approvals_rollout"),
)

alert_log = sa.Table(
    "alert_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("model", sa.String(64), nullable=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=False),
)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the scoring service append to the prediction log while assets read it.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@functools.cache
def get_engine(url: str) -> Engine:
    """Return a shared engine for the URL, with the schema created."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            f"MLP_DATABASE_URL {safe_url(url)!r} is not a valid SQLAlchemy URL; use for example "
            "'sqlite:///path/warehouse.db' or 'postgresql+psycopg2://user@host:5432/db'"
        ) from exc
    if parsed.get_backend_name() not in DATABASE_KINDS:
        raise ConfigurationError(
            f"MLP_DATABASE_URL {safe_url(url)!r} names database kind "
            f"{parsed.get_backend_name()!r}, which is not supported; the supported kinds are "
            f"{', '.join(DATABASE_KINDS)}, for example {DATABASE_URL_EXAMPLES}"
        )
    engine = _create_engine(url, parsed)
    try:
        metadata.create_all(engine)
    except sa.exc.OperationalError as exc:
        raise ConfigurationError(
            f"cannot reach the warehouse at {safe_url(url)}: "
            f"{exc.orig}. Start the database or fix MLP_DATABASE_URL."
        ) from exc
    except sa.exc.DatabaseError as exc:
        # For example a SQLite path to some other kind of file ("file is not a database").
        raise ConfigurationError(
            f"the warehouse at {safe_url(url)} is not a usable database: {exc.orig}. Point "
            "MLP_DATABASE_URL at a database this project created, or at a new file path."
        ) from exc
    return engine


def _create_engine(url: str, parsed: sa.engine.URL) -> Engine:
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        if not sqlite:
            return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigurationError(
            f"SQLAlchemy has no driver {parsed.get_driver_name()!r} for {safe_url(url)}; leave "
            f"the driver out or use a known one, for example {DATABASE_URL_EXAMPLES}"
        ) from exc
    except ImportError as exc:
        # SQLAlchemy imports the driver (DBAPI module) when it creates the engine.
        raise ConfigurationError(
            f"the database driver {parsed.get_driver_name()!r} for {safe_url(url)} is not "
            f"installed (Python module {exc.name!r} is missing); install the package that "
            "provides it, or use postgresql+psycopg2, which the project installs"
        ) from exc
    sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def utcnow() -> datetime:
    return datetime.now(UTC)
