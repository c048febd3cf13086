"""The drift reference: the current champion's training snapshot and its scores on it.

Chosen reference: every row of the champion's feature snapshot for the feature columns, and only
the rows from the validation start on (validation and holdout windows) for the score column.
The whole snapshot covers a full daily cycle, so an hourly window is compared with traffic from
all hours, not with the first 16 hours only. Scores are different: on the rows it was fitted to a
boosted model scores more confidently than it ever will in production, so in-sample scores would
show score drift on every window. The validation start comes from the version's ``as_of`` tag (or
the snapshot's ``as_of``) and the spec's windows.

The reference is built once per version and snapshot hash and cached as Parquet under
``$MLP_HOME/monitoring/reference/<model>/``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration import registry
from mlp_orchestration.errors import DataVerificationError, NotFoundError
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import feature_snapshots

logger = logging.getLogger(__name__)

SCORE_COLUMN = "score"
OUT_OF_SAMPLE_COLUMN = "out_of_sample"


@dataclass(frozen=True)
class Reference:
    """Reference rows for one champion version."""

    model: str
    version: str
    snapshot_hash: str
    validation_start: datetime
    frame: pd.DataFrame  # the spec's features, SCORE_COLUMN and OUT_OF_SAMPLE_COLUMN
    path: Path

    @property
    def rows(self) -> int:
        return len(self.frame)

    def features(self) -> pd.DataFrame:
        return self.frame.drop(columns=[SCORE_COLUMN, OUT_OF_SAMPLE_COLUMN])

    def scores(self) -> np.ndarray:
        """Scores of the out-of-sample rows only."""
        mask = self.frame[OUT_OF_SAMPLE_COLUMN].to_numpy()
        return self.frame[SCORE_COLUMN].to_numpy()[mask]


def cache_dir(settings: Settings, model: str) -> Path:
    return settings.home_dir / "monitoring" / "reference" / model


def load_champion_reference(settings: Settings, engine: Engine, spec: ModelSpec) -> Reference:
    """Return the reference of the version holding the ``champion`` alias, building it if needed.

    Raises:
        NotFoundError: no champion, no ``snapshot_hash`` tag, or no snapshot row or file.
        ModelLoadError: the champion's native LightGBM model cannot be downloaded.
    """
    client = registry.configure(settings)
    version = registry.alias_version(client, spec.name, registry.CHAMPION)
    if version is None:
        raise NotFoundError(
            f"model {spec.name!r} has no version with the MLflow alias "
            f"{registry.CHAMPION!r}, so drift has no reference; promote a version first "
            "(run the lifecycle job)"
        )
    tags = registry.get_version(client, spec.name, version).tags
    snapshot_hash = tags.get("snapshot_hash")
    if not snapshot_hash:
        raise NotFoundError(
            f"{spec.name} version {version} has no 'snapshot_hash' tag, so its training "
            "snapshot is unknown; register versions through the lifecycle's training step"
        )
    return load_reference(
        settings,
        engine,
        spec,
        version=version,
        snapshot_hash=snapshot_hash,
        as_of_tag=tags.get("as_of"),
    )


def load_reference(
    settings: Settings,
    engine: Engine,
    spec: ModelSpec,
    *,
    version: str,
    snapshot_hash: str,
    as_of_tag: str | None = None,
) -> Reference:
    """Return the cached reference of one version, building it from the snapshot if absent."""
    path = cache_dir(settings, spec.name) / f"v{version}-{snapshot_hash[:16]}.parquet"
    snapshot_path, snapshot_as_of = _snapshot_row(engine, spec.name, snapshot_hash)
    as_of = _parse_as_of(as_of_tag) if as_of_tag else snapshot_as_of
    validation_start = spec.windows.bounds(as_of)["validation"][0]
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        frame = _build(settings, spec, version, snapshot_path, validation_start)
        _write_atomically(frame, path)
        logger.info(
            "built the drift reference of %s version %s: %d rows at %s",
            spec.name,
            version,
            len(frame),
            path,
        )
    return Reference(
        model=spec.name,
        version=str(version),
        snapshot_hash=snapshot_hash,
        validation_start=validation_start,
        frame=frame,
        path=path,
    )


def _snapshot_row(engine: Engine, model: str, snapshot_hash: str) -> tuple[Path, datetime]:
    query = sa.select(feature_snapshots.c.path, feature_snapshots.c.as_of).where(
        feature_snapshots.c.model == model,
        feature_snapshots.c.snapshot_hash == snapshot_hash,
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(
            f"feature_snapshots has no row for model {model!r} and snapshot {snapshot_hash}; "
            "materialize the feature snapshot the champion was trained on"
        )
    return Path(row.path), row.as_of


def _parse_as_of(value: str) -> datetime:
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise DataVerificationError(
            f"version tag as_of {value!r} is not an ISO 8601 time; re-tag the version"
        ) from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _build(
    settings: Settings,
    spec: ModelSpec,
    version: str,
    snapshot_path: Path,
    validation_start: datetime,
) -> pd.DataFrame:
    if not snapshot_path.is_file():
        raise NotFoundError(
            f"feature snapshot file {snapshot_path} does not exist; materialize the snapshot "
            "again or restore MLP_HOME"
        )
    names = spec.feature_names
    snapshot = pd.read_parquet(snapshot_path, columns=[*names, spec.event_time])
    model_path = cache_dir(settings, spec.name) / f"model-v{version}.lgb"
    if not model_path.is_file():
        registry.download_native_model(settings, spec.name, version, model_path)
    model = NativeModel.from_file(model_path, version=str(version))
    matrix = snapshot[names].to_numpy(dtype=np.float64)
    frame = snapshot[names].astype(np.float64)
    frame[SCORE_COLUMN] = model.predict_matrix(matrix)
    event_time = pd.to_datetime(snapshot[spec.event_time], utc=True)
    frame[OUT_OF_SAMPLE_COLUMN] = (event_time >= pd.Timestamp(validation_start)).to_numpy()
    return frame.reset_index(drop=True)


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)
