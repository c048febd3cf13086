"""The request path: pick the arm, vectorize by name, score, explain, log, hand off shadows.

Everything here runs on the event loop for single records, so it stays free of pandas and
pydantic. Metrics observation, the prediction log append and the shadow hand-off each cost
a few microseconds, because the log rows are built and written in the writer's thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from mlp_orchestration.errors import MlpError
from mlp_orchestration.scoring import FeatureError
from mlp_orchestration.serving.canary import CANARY, CHAMPION, choose_arm
from mlp_orchestration.serving.contract import InputContractError
from mlp_orchestration.serving.errors import InvalidRequestError
from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.predlog import PredictionRecord
from mlp_orchestration.serving.shadow import ShadowJob
from mlp_orchestration.serving.state import LoadedVersion, ModelRoute
from mlp_orchestration.serving.validation import ScoreInput
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

LOG_ODDS = "log_odds"
_MAX_NAMES_SHOWN = 20
_MAX_BATCH_ERRORS_SHOWN = 5


class RequestIds:
    """Unique request ids: a random per-process prefix and a counter, 32 hex characters.

    uuid4 reads the OS random source on every call, which costs more than a score.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = RequestIds().new


class Scorer:
    """Scores validated records against a model route."""

    def __init__(
        self,
        *,
        metrics: ServingMetrics,
        log_prediction: Callable[[PredictionRecord], None],
        submit_shadow: Callable[[ShadowJob], bool],
    ) -> None:
        self._metrics = metrics
        self._log_prediction = log_prediction
        self._submit_shadow = submit_shadow

    def score(
        self, model: str, route: ModelRoute, item: ScoreInput, *, request_id: str, started: float
    ) -> dict[str, Any]:
        """Score one record and return the response body.

        Raises:
            FeatureError: naming the missing, unknown or non-numeric features.
            InputContractError: naming the values outside the version's input contract.
        """
        arm, loaded = pick_version(route, item.entity_id)
        row = _vectorize(loaded, item.features)
        return self._score_row(model, route, item, arm, loaded, row, request_id, started)

    def score_batch(
        self,
        model: str,
        route: ModelRoute,
        items: Sequence[ScoreInput],
        *,
        request_id: str,
        started: float,
    ) -> list[dict[str, Any]]:
        """Score every record of a batch, or none when any record is invalid.

        Raises:
            InvalidRequestError: naming the first invalid records by index and why.
        """
        prepared = []
        errors = []
        for i, item in enumerate(items):
            arm, loaded = pick_version(route, item.entity_id)
            try:
                prepared.append((item, arm, loaded, _vectorize(loaded, item.features)))
            except (FeatureError, InputContractError) as exc:
                errors.append(f"records[{i}]: {exc}")
        if errors:
            shown = errors[:_MAX_BATCH_ERRORS_SHOWN]
            more = len(errors) - len(shown)
            suffix = f" (and {more} more invalid records)" if more else ""
            raise InvalidRequestError(
                f"{len(errors)} of {len(items)} records are invalid; nothing was scored: "
                + " | ".join(shown)
                + suffix
            )
        return [
            self._score_row(model, route, item, arm, loaded, row, f"{request_id}-{i}", started)
            for i, (item, arm, loaded, row) in enumerate(prepared)
        ]

    def _score_row(
        self,
        model: str,
        route: ModelRoute,
        item: ScoreInput,
        arm: str,
        loaded: LoadedVersion,
        row: np.ndarray,
        request_id: str,
        started: float,
    ) -> dict[str, Any]:
        event_time = item.event_time or utcnow()
        config = route.config
        try:
            score = loaded.native.predict_row(row)
            explanation = _explain(loaded, row) if item.explain else None
        except MlpError as exc:
            self._log_failure(model, item, arm, loaded, config.version, request_id, event_time, exc)
            raise RuntimeError(f"scoring {model} version {loaded.version} failed: {exc}") from exc
        elapsed = time.perf_counter() - started
        self._metrics.observe_latency(model, loaded.version, arm, elapsed)
        self._log_prediction(
            PredictionRecord(
                request_id,
                utcnow(),
                event_time,
                model,
                item.entity_id,
                item.features,
                score,
                loaded.version,
                arm,
                config.version,
                elapsed * 1000.0,
            )
        )
        if route.shadows:
            self._submit_shadow(
                ShadowJob(
                    request_id=request_id,
                    model=model,
                    entity_id=item.entity_id,
                    features=item.features,
                    event_time=event_time,
                    routing_version=config.version,
                    versions=route.shadows,
                )
            )
        return {
            "request_id": request_id,
            "model": model,
            "entity_id": item.entity_id,
            "score": score,
            "model_version": loaded.version,
            "arm": arm,
            "routing_version": config.version,
            "explanation": explanation,
        }

    def _log_failure(
        self,
        model: str,
        item: ScoreInput,
        arm: str,
        loaded: LoadedVersion,
        routing_version: int,
        request_id: str,
        event_time: datetime,
        exc: MlpError,
    ) -> None:
        logger.error(
            "scoring request %s (%s version %s, entity %s) failed: %s",
            request_id,
            model,
            loaded.version,
            item.entity_id,
            exc,
        )
        self._log_prediction(
            PredictionRecord(
                request_id,
                utcnow(),
                event_time,
                model,
                item.entity_id,
                item.features,
                None,
                loaded.version,
                arm,
                routing_version,
                0.0,
                500,
                str(exc),
            )
        )


def pick_version(route: ModelRoute, entity_id: str) -> tuple[str, LoadedVersion]:
    """Return the arm and version that score an entity under a route."""
    if route.canary is None:
        return CHAMPION, route.champion
    if choose_arm(entity_id, salt=route.canary_salt, share=route.canary_share) == CANARY:
        return CANARY, route.canary
    return CHAMPION, route.champion


def _vectorize(loaded: LoadedVersion, features: Mapping[str, Any]) -> np.ndarray:
    try:
        return loaded.checked_row(features)
    except FeatureError as exc:
        raise _readable(exc) from None


def _readable(exc: FeatureError) -> FeatureError:
    """Cap the names an error lists, so a body of many odd keys cannot echo back megabytes."""

    def cap(names: list[str]) -> list[str]:
        capped = [
            name[:64] + "..." if len(name) > 64 else name for name in names[:_MAX_NAMES_SHOWN]
        ]
        if len(names) > _MAX_NAMES_SHOWN:
            capped.append(f"({len(names) - _MAX_NAMES_SHOWN} more)")
        return capped

    return FeatureError(
        missing=cap(exc.missing), unknown=cap(exc.unknown), invalid=cap(exc.invalid)
    )


def _explain(loaded: LoadedVersion, row: np.ndarray) -> dict[str, Any]:
    attributions, base_value = loaded.native.contributions(row)
    return {"unit": LOG_ODDS, "base_value": base_value, "attributions": attributions}
