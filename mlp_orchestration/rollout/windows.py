"""One arm's traffic in one window: the prediction log rows of given routing versions.

The canary guards compare the canary arm with the champion arm of the same routing version, so
both saw the same traffic mix over the same time. Labels come from ``label_feedback`` by entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.warehouse import label_feedback, prediction_log


@dataclass(frozen=True)
class ArmWindow:
    """Requests of one arm: outcome, latency, score and label, with the arm's threshold."""

    arm: str
    model_version: str | None
    routing_versions: tuple[int, ...]
    decision_threshold: float
    statuses: np.ndarray
    latencies_ms: np.ndarray
    scores: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    @property
    def requests(self) -> int:
        return int(self.statuses.size)

    @property
    def errors(self) -> int:
        return int(np.sum(self.statuses != 200))

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def scored(self) -> np.ndarray:
        """Scores of the successful requests."""
        return self.scores[np.isfinite(self.scores)]

    @property
    def alerts(self) -> int:
        return int(np.sum(self.scored >= self.decision_threshold))

    @property
    def alert_rate(self) -> float | None:
        scored = self.scored.size
        return self.alerts / scored if scored else None

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (labels, scores) of the scored requests whose label has arrived."""
        mask = np.isfinite(self.scores) & np.isfinite(self.labels)
        return self.labels[mask].astype(np.int64), self.scores[mask]

    @property
    def labelled_positives(self) -> int:
        labels, _ = self.labelled()
        return int(labels.sum())

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        arm: str,
        decision_threshold: float,
        routing_versions: Sequence[int],
    ) -> ArmWindow:
        """Build a window from rows with columns status, latency_ms, score, label, model_version."""
        versions = frame["model_version"].dropna()
        return cls(
            arm=arm,
            model_version=str(versions.mode().iloc[0]) if not versions.empty else None,
            routing_versions=tuple(int(v) for v in routing_versions),
            decision_threshold=float(decision_threshold),
            statuses=frame["status"].to_numpy(dtype=np.int64),
            latencies_ms=pd.to_numeric(frame["latency_ms"]).to_numpy(dtype=np.float64),
            scores=pd.to_numeric(frame["score"]).to_numpy(dtype=np.float64),
            labels=pd.to_numeric(frame["label"]).to_numpy(dtype=np.float64),
        )


def read_arm_rows(
    engine: Engine,
    model: str,
    *,
    arm: str,
    routing_versions: Sequence[int],
    model_version: str | None = None,
) -> pd.DataFrame:
    """Read one arm's prediction log rows of the given routing versions, with arrived labels."""
    joined = prediction_log.outerjoin(
        label_feedback,
        sa.and_(
            label_feedback.c.model == prediction_log.c.model,
            label_feedback.c.entity_id == prediction_log.c.entity_id,
        ),
    )
    query = (
        sa.select(
            prediction_log.c.request_id,
            prediction_log.c.entity_id,
            prediction_log.c.status,
            prediction_log.c.latency_ms,
            prediction_log.c.score,
            prediction_log.c.model_version,
            label_feedback.c.label,
        )
        .select_from(joined)
        .where(
            prediction_log.c.model == model,
            prediction_log.c.arm == arm,
            prediction_log.c.routing_version.in_(list(routing_versions)),
        )
    )
    if model_version is not None:
        query = query.where(prediction_log.c.model_version == model_version)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    columns = ["request_id", "entity_id", "status", "latency_ms", "score", "model_version", "label"]
    frame = pd.DataFrame(rows, columns=columns)
    # Numeric dtypes even for an all-NULL column, so windows of several versions concatenate.
    for column in ("latency_ms", "score", "label"):
        frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
    return frame


def count_arm_requests(
    engine: Engine, model: str, *, arm: str, routing_versions: Sequence[int]
) -> int:
    """Count one arm's prediction log rows of the given routing versions."""
    query = sa.select(sa.func.count()).where(
        prediction_log.c.model == model,
        prediction_log.c.arm == arm,
        prediction_log.c.routing_version.in_(list(routing_versions)),
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
