"""Reads one time window of the prediction log: the served rows' features and scores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.warehouse import prediction_log

logger = logging.getLogger(__name__)

# Shadow rows are scored off the request path by models that serve no one, so they describe
# the challenger, not the traffic or what the decision engine received.
SERVED_ARMS = ("champion", "canary")


@dataclass(frozen=True)
class WindowData:
    """The served, successfully scored requests of one window."""

    start: datetime
    end: datetime
    features: pd.DataFrame
    scores: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.features)


def check_window(start: datetime, end: datetime) -> None:
    """Raise when a window's bounds are naive or not in order."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ConfigurationError(
            f"window bounds {start!r} and {end!r} must be timezone-aware; pass UTC datetimes"
        )
    if end <= start:
        raise ConfigurationError(
            f"window end {end.isoformat()} must be after its start {start.isoformat()}"
        )


def read_window(
    engine: Engine,
    *,
    model: str,
    feature_names: Sequence[str],
    start: datetime,
    end: datetime,
    arms: Sequence[str] = SERVED_ARMS,
) -> WindowData:
    """Return features and scores of the requests with ``start <= event_time < end``.

    Only rows with status 200 and a score are read. A feature missing from a logged request
    becomes NaN, and the drift methods leave NaN out. An entity scored more than once (a client
    retrying, or the same traffic replayed twice) counts once, with its latest request.
    """
    check_window(start, end)
    query = (
        sa.select(prediction_log.c.entity_id, prediction_log.c.features, prediction_log.c.score)
        .where(prediction_log.c.model == model)
        .where(prediction_log.c.event_time >= start)
        .where(prediction_log.c.event_time < end)
        .where(prediction_log.c.arm.in_(list(arms)))
        .where(prediction_log.c.status == 200)
        .where(prediction_log.c.score.is_not(None))
        .order_by(prediction_log.c.id)
    )
    with engine.connect() as conn:
        logged = conn.execute(query).all()
    latest = {entity_id: (features, score) for entity_id, features, score in logged}
    rows = list(latest.values())
    names = list(feature_names)
    matrix = np.full((len(rows), len(names)), np.nan, dtype=np.float64)
    scores = np.empty(len(rows), dtype=np.float64)
    for i, (features, score) in enumerate(rows):
        scores[i] = score
        if features:
            matrix[i] = [_number(features.get(name)) for name in names]
    logger.info(
        "read %d scored requests of %s between %s and %s (%d repeated entities left out)",
        len(rows),
        model,
        start.isoformat(),
        end.isoformat(),
        len(logged) - len(rows),
    )
    return WindowData(
        start=start,
        end=end,
        features=pd.DataFrame(matrix, columns=names),
        scores=scores,
    )


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")
