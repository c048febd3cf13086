"""Approvals of a rollout's promotion, stored in ``rollout_approvals``.

When a spec sets ``rollout.requires_approval``, the last stage promotes only after a person other
than the one who started the rollout has approved it. The rollout's starter is the actor of its
first SHADOW or CANARY routing config; a rollout takes one approval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import ApprovalError, ConfigurationError
from mlp_orchestration.rollout.state import RolloutState, active_rollout
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import get_engine, rollout_approvals, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Approval:
    model: str
    candidate_version: str
    rollout_started_version: int
    started_by: str
    approver: str
    note: str
    approved_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "approver": self.approver,
            "started_by": self.started_by,
            "candidate_version": self.candidate_version,
            "rollout_started_version": self.rollout_started_version,
            "note": self.note,
            "approved_at": self.approved_at.isoformat(),
        }


def same_person(first: str, second: str) -> bool:
    """Compare two actor names ignoring case and surrounding spaces."""
    return first.strip().casefold() == second.strip().casefold()


def find_approval(engine: Engine, state: RolloutState) -> Approval | None:
    """Return the approval of a rollout, or None."""
    query = sa.select(rollout_approvals).where(
        rollout_approvals.c.model == state.model,
        rollout_approvals.c.rollout_started_version == state.started.version,
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return Approval(
        model=row.model,
        candidate_version=row.candidate_version,
        rollout_started_version=row.rollout_started_version,
        started_by=row.started_by,
        approver=row.approver,
        note=row.note,
        approved_at=row.approved_at,
    )


def record_approval(
    engine: Engine, state: RolloutState, *, approver: str, note: str = ""
) -> Approval:
    """Store the approval of a rollout's promotion.

    Raises:
        ConfigurationError: the approver's name is empty.
        ApprovalError: the approver started the rollout, or the rollout is already approved.
    """
    if not approver.strip():
        raise ConfigurationError("an approval needs the approver's name; pass --by NAME")
    if same_person(approver, state.started_by):
        raise ApprovalError(
            f"approver {approver.strip()!r} started the rollout of {state.model} version "
            f"{state.candidate_version} (as {state.started_by!r}, routing "
            f"v{state.started.version}); a different person must approve its promotion with "
            "'mlp routing approve'"
        )
    existing = find_approval(engine, state)
    if existing is not None:
        raise ApprovalError(
            f"the rollout of {state.model} version {state.candidate_version} was already "
            f"approved by {existing.approver} at {existing.approved_at.isoformat()}"
        )
    approval = Approval(
        model=state.model,
        candidate_version=state.candidate_version,
        rollout_started_version=state.started.version,
        started_by=state.started_by,
        approver=approver.strip(),
        note=note,
        approved_at=utcnow(),
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                rollout_approvals.insert().values(
                    model=approval.model,
                    candidate_version=approval.candidate_version,
                    rollout_started_version=approval.rollout_started_version,
                    started_by=approval.started_by,
                    approver=approval.approver,
                    note=approval.note,
                    approved_at=approval.approved_at,
                )
            )
    except sa.exc.IntegrityError as exc:
        raise ApprovalError(
            f"the rollout of {state.model} version {state.candidate_version} was approved by "
            "someone else at the same moment; see 'mlp routing history'"
        ) from exc
    logger.info(
        "promotion of %s version %s approved by %s (rollout started by %s)",
        state.model,
        state.candidate_version,
        approval.approver,
        state.started_by,
    )
    return approval


def approve_rollout(settings: Settings, model: str, *, approver: str, note: str = "") -> Approval:
    """Approve the promotion of a model's rollout in progress.

    Raises:
        ApprovalError: no rollout is in progress, the approver started it, or it is approved.
    """
    engine = get_engine(settings.warehouse_url)
    store = RoutingStore(engine, redis_url=settings.redis_url)
    history = store.history(model)
    state = active_rollout(history)
    if state is None:
        current = history[-1].stage.value if history else "no routing config"
        raise ApprovalError(
            f"model {model!r} has no rollout in progress (current stage: {current}); "
            "approve while a challenger is in its shadow or canary stages"
        )
    return record_approval(engine, state, approver=approver, note=note)
