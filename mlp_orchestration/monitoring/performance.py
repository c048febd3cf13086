"""Delayed-label performance per model version and window: PR-AUC, precision and recall.

Labels arrive in ``label_feedback`` after the predictions. A window whose label coverage is below
``monitoring.performance.min_label_coverage`` is marked incomplete and not scored, because its
figures would reflect which labels happen to be in, not how the model does.

Precision and recall are taken at the version's ``decision_threshold`` tag (the score that flags
the spec's ``alert_rate`` on the validation window). A version without the tag is measured at the
score that flags the top ``alert_rate`` share of the window's own scores, and
``threshold_source`` records which threshold was used.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score
from sqlalchemy.engine import Engine

from mlp_orchestration import registry
from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.monitoring.store import upsert
from mlp_orchestration.monitoring.window import SERVED_ARMS
from mlp_orchestration.monitoring.windows import recent_windows
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import label_feedback, performance_metrics, prediction_log, utcnow

logger = logging.getLogger(__name__)

SOURCE_TAG = "decision_threshold tag"
SOURCE_WINDOW = "top alert_rate share of the window's scores (no decision_threshold tag)"
SOURCE_UNREGISTERED = "top alert_rate share of the window's scores (version not in the registry)"


@dataclass(frozen=True)
class PerformanceWindow:
    """Performance of one model version in one window."""

    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    rows: int
    labelled: int
    positives: int
    label_coverage: float
    complete: bool
    pr_auc: float | None
    precision_at_alert_rate: float | None
    recall_at_alert_rate: float | None
    threshold: float | None
    threshold_source: str

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["window_start"] = self.window_start.isoformat()
        values["window_end"] = self.window_end.isoformat()
        return values


def decision_thresholds(
    client: MlflowClient, model: str, versions: list[str]
) -> dict[str, tuple[float | None, str]]:
    """Return each version's ``decision_threshold`` tag and where the threshold will come from."""
    thresholds: dict[str, tuple[float | None, str]] = {}
    for version in versions:
        try:
            tags = registry.get_version(client, model, version).tags
        except NotFoundError:
            logger.warning("%s version %s is not in the MLflow registry", model, version)
            thresholds[version] = (None, SOURCE_UNREGISTERED)
            continue
        raw = tags.get("decision_threshold")
        thresholds[version] = (float(raw), SOURCE_TAG) if raw else (None, SOURCE_WINDOW)
    return thresholds


def read_labelled_predictions(
    engine: Engine, model: str, *, start: datetime, end: datetime
) -> pd.DataFrame:
    """Return served predictions in [start, end) with their label, or NaN where none arrived.

    An entity scored more than once by the same version counts once, with its latest score, so
    a retried or replayed transaction does not weigh twice against its single label.
    """
    joined = prediction_log.outerjoin(
        label_feedback,
        sa.and_(
            label_feedback.c.model == prediction_log.c.model,
            label_feedback.c.entity_id == prediction_log.c.entity_id,
        ),
    )
    query = (
        sa.select(
            prediction_log.c.entity_id,
            prediction_log.c.event_time,
            prediction_log.c.model_version,
            prediction_log.c.score,
            label_feedback.c.label,
        )
        .select_from(joined)
        .where(prediction_log.c.model == model)
        .where(prediction_log.c.event_time >= start)
        .where(prediction_log.c.event_time < end)
        .where(prediction_log.c.arm.in_(list(SERVED_ARMS)))
        .where(prediction_log.c.status == 200)
        .where(prediction_log.c.score.is_not(None))
        .order_by(prediction_log.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        rows, columns=["entity_id", "event_time", "model_version", "score", "label"]
    )
    frame = frame.drop_duplicates(["entity_id", "model_version"], keep="last")
    return frame.drop(columns="entity_id").reset_index(drop=True)


def newest_event_time(engine: Engine, model: str) -> datetime | None:
    query = sa.select(sa.func.max(prediction_log.c.event_time)).where(
        prediction_log.c.model == model
    )
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def score_window(
    frame: pd.DataFrame,
    *,
    min_label_coverage: float,
    alert_rate: float,
    threshold: float | None,
) -> dict[str, object]:
    """Score one version's predictions of one window; incomplete windows get no figures."""
    rows = len(frame)
    labels = frame["label"].to_numpy(dtype=np.float64)
    known = ~np.isnan(labels)
    labelled = int(known.sum())
    positives = int(np.nansum(labels))
    coverage = labelled / rows if rows else 0.0
    figures: dict[str, object] = {
        "rows": rows,
        "labelled": labelled,
        "positives": positives,
        "label_coverage": coverage,
        "complete": rows > 0 and coverage >= min_label_coverage,
        "pr_auc": None,
        "precision_at_alert_rate": None,
        "recall_at_alert_rate": None,
        "threshold": threshold,
    }
    if not figures["complete"]:
        return figures

    scores = frame["score"].to_numpy(dtype=np.float64)[known]
    truth = labels[known].astype(np.int64)
    if threshold is None:
        threshold = float(np.quantile(scores, 1.0 - alert_rate))
        figures["threshold"] = threshold
    flagged = scores >= threshold

    if flagged.any():
        figures["precision_at_alert_rate"] = float(truth[flagged].mean())
    if positives > 0:
        figures["recall_at_alert_rate"] = float(flagged[truth == 1].mean())
        if positives < labelled:
            figures["pr_auc"] = float(average_precision_score(truth, scores))
    return figures


def compute_performance(
    spec: ModelSpec, *, engine: Engine, client: MlflowClient
) -> list[PerformanceWindow]:
    """Compute and upsert performance per version and window over the spec's lookback."""
    monitor = spec.monitoring.performance
    newest = newest_event_time(engine, spec.name)
    if newest is None:
        return []
    windows = recent_windows(newest, length=monitor.window, lookback=monitor.lookback)
    frame = read_labelled_predictions(engine, spec.name, start=windows[0][0], end=windows[-1][1])
    if frame.empty:
        return []
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)

    versions = sorted(frame["model_version"].dropna().astype(str).unique())
    thresholds = decision_thresholds(client, spec.name, versions)

    results = []
    for start, end in windows:
        in_window = frame[
            (frame["event_time"] >= pd.Timestamp(start)) & (frame["event_time"] < pd.Timestamp(end))
        ]
        for version, group in in_window.groupby("model_version"):
            threshold, source = thresholds[str(version)]
            figures = score_window(
                group,
                min_label_coverage=monitor.min_label_coverage,
                alert_rate=spec.alert_rate,
                threshold=threshold,
            )
            results.append(
                PerformanceWindow(
                    model=spec.name,
                    model_version=str(version),
                    window_start=start,
                    window_end=end,
                    threshold_source=source,
                    **figures,
                )
            )
    _record(engine, results)
    return results


def _record(engine: Engine, results: list[PerformanceWindow]) -> None:
    computed_at = utcnow()
    rows = [
        {
            "model": result.model,
            "model_version": result.model_version,
            "window_start": result.window_start,
            "window_end": result.window_end,
            "rows": result.rows,
            "labelled": result.labelled,
            "positives": result.positives,
            "label_coverage": result.label_coverage,
            "complete": result.complete,
            "pr_auc": result.pr_auc,
            "precision_at_alert_rate": result.precision_at_alert_rate,
            "recall_at_alert_rate": result.recall_at_alert_rate,
            "computed_at": computed_at,
        }
        for result in results
    ]
    with engine.begin() as conn:
        upsert(
            conn,
            performance_metrics,
            rows,
            key_columns=["model", "model_version", "window_start"],
        )
