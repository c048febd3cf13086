"""The ``rollout_events`` table: every rollout decision with its metrics and breaches."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlp_orchestration.warehouse import rollout_events, utcnow

# Decisions recorded in rollout_events.decision.
SHADOW_PASSED = "shadow_passed"
SHADOW_FAILED = "shadow_failed"
SHADOW_INSUFFICIENT = "shadow_insufficient"
ADVANCED = "advanced"
ROLLED_BACK = "rolled_back"
AWAITING_APPROVAL = "awaiting_approval"
PROMOTED = "promoted"
STARTED = "started"
APPROVED = "approved"
# The verdicts of a shadow evaluation, as opposed to other decisions taken during the shadow stage.
SHADOW_VERDICTS = frozenset({SHADOW_PASSED, SHADOW_FAILED, SHADOW_INSUFFICIENT})


def json_safe(value: Any) -> Any:
    """Convert numpy values, NaN and infinities into plain JSON (NaN and inf become None)."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class RolloutEvent:
    id: int
    model: str
    candidate_version: str
    stage: str
    decision: str
    metrics: dict[str, Any]
    breaches: list[dict[str, Any]]
    routing_version: int | None
    actor: str
    decided_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stage": self.stage,
            "decision": self.decision,
            "routing_version": self.routing_version,
            "actor": self.actor,
            "decided_at": self.decided_at.isoformat(),
            "breaches": self.breaches,
            "metrics": self.metrics,
        }


def record_event(
    engine: Engine,
    *,
    model: str,
    candidate_version: str,
    stage: str,
    decision: str,
    actor: str,
    routing_version: int | None,
    metrics: Mapping[str, Any],
    breaches: list[Mapping[str, Any]] | None = None,
) -> int:
    """Append one decision and return its id.

    Args:
        routing_version: the routing config version whose traffic the decision judged.
    """
    with engine.begin() as conn:
        return insert_event(
            conn,
            model=model,
            candidate_version=candidate_version,
            stage=stage,
            decision=decision,
            actor=actor,
            routing_version=routing_version,
            metrics=metrics,
            breaches=breaches,
        )


def insert_event(
    conn: Connection,
    *,
    model: str,
    candidate_version: str,
    stage: str,
    decision: str,
    actor: str,
    routing_version: int | None,
    metrics: Mapping[str, Any],
    breaches: list[Mapping[str, Any]] | None = None,
) -> int:
    """Append one decision inside the caller's transaction and return its id."""
    row = {
        "model": model,
        "candidate_version": candidate_version,
        "stage": stage,
        "decision": decision,
        "metrics": json_safe(dict(metrics)),
        "breaches": json_safe(list(breaches or [])),
        "routing_version": routing_version,
        "actor": actor,
        "decided_at": utcnow(),
    }
    result = conn.execute(rollout_events.insert().values(**row))
    return int(result.inserted_primary_key[0])


def list_events(
    engine: Engine,
    model: str,
    *,
    candidate_version: str | None = None,
    since_routing_version: int | None = None,
    decision: str | None = None,
) -> list[RolloutEvent]:
    """Return a model's rollout events, oldest first, optionally for one rollout."""
    query = sa.select(rollout_events).where(rollout_events.c.model == model)
    if candidate_version is not None:
        query = query.where(rollout_events.c.candidate_version == candidate_version)
    if since_routing_version is not None:
        query = query.where(rollout_events.c.routing_version >= since_routing_version)
    if decision is not None:
        query = query.where(rollout_events.c.decision == decision)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(rollout_events.c.id)).all()
    return [
        RolloutEvent(
            id=row.id,
            model=row.model,
            candidate_version=row.candidate_version,
            stage=row.stage,
            decision=row.decision,
            metrics=row.metrics or {},
            breaches=row.breaches or [],
            routing_version=row.routing_version,
            actor=row.actor,
            decided_at=row.decided_at,
        )
        for row in rows
    ]
