"""Approvals of a rollout's promotion, stored in ``rollout_approvals``.

When a spec sets ``rollout.requires_approval``, the last stage promotes only after a person other
than the one who started the rollout has approved it. The rollout's starter is the actor of its
first SHADOW or CANARY routing config; a rollout takes one approval.

Names given with ``--by`` are free text. Each approval also records the OS user and MLP_ACTOR of
the approving process in an ``approved`` row of ``rollout_events``, written in the same
transaction as the ``rollout_approvals`` row. When ``mlp rollout start`` recorded the starter's
OS user, an approval from that same OS user is rejected whatever name it gives. Both values come
from the environment, not from an identity provider (see ``identity``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import ApprovalError, ConfigurationError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.identity import EnvironmentIdentity, environment_identity
from mlp_orchestration.rollout.state import RolloutState, active_rollout, stage_label
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
    # OS user and MLP_ACTOR of the approver and of the starter; None where none was recorded.
    approver_identity: EnvironmentIdentity | None = None
    started_by_identity: EnvironmentIdentity | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "approver": self.approver,
            "approver_os_user": _os_user(self.approver_identity),
            "approver_mlp_actor": _mlp_actor(self.approver_identity),
            "started_by": self.started_by,
            "started_by_os_user": _os_user(self.started_by_identity),
            "candidate_version": self.candidate_version,
            "rollout_started_version": self.rollout_started_version,
            "note": self.note,
            "approved_at": self.approved_at.isoformat(),
        }


def _os_user(identity: EnvironmentIdentity | None) -> str | None:
    return identity.os_user if identity else None


def _mlp_actor(identity: EnvironmentIdentity | None) -> str | None:
    return identity.mlp_actor if identity else None


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
    recorded = [
        event
        for event in events.list_events(
            engine,
            state.model,
            candidate_version=row.candidate_version,
            since_routing_version=row.rollout_started_version,
            decision=events.APPROVED,
        )
        if event.metrics.get("rollout_started_version") == row.rollout_started_version
    ]
    metrics = recorded[-1].metrics if recorded else {}
    return Approval(
        model=row.model,
        candidate_version=row.candidate_version,
        rollout_started_version=row.rollout_started_version,
        started_by=row.started_by,
        approver=row.approver,
        note=row.note,
        approved_at=row.approved_at,
        approver_identity=EnvironmentIdentity.from_dict(metrics.get("approver_identity")),
        started_by_identity=state.started_identity,
    )


def record_approval(
    engine: Engine,
    state: RolloutState,
    *,
    approver: str,
    note: str = "",
    identity: EnvironmentIdentity | None = None,
) -> Approval:
    """Store the approval of a rollout's promotion, with the approving process's identity.

    Args:
        identity: the OS user and MLP_ACTOR of the approving process.

    Raises:
        ConfigurationError: the approver's name is empty.
        ApprovalError: the approver started the rollout (same name, or the same OS user as the
            one the starter's ``mlp rollout start`` recorded), or the rollout is already approved.
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
    _check_os_user(state, approver=approver.strip(), identity=identity)
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
        approver_identity=identity,
        started_by_identity=state.started_identity,
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
            events.insert_event(
                conn,
                model=state.model,
                candidate_version=state.candidate_version,
                stage=stage_label(state.current),
                decision=events.APPROVED,
                actor=approval.approver,
                routing_version=state.current.version,
                metrics={
                    "rollout_started_version": state.started.version,
                    "approver_identity": identity.as_dict() if identity else None,
                    "started_by": state.started_by,
                    "started_by_identity": (
                        state.started_identity.as_dict() if state.started_identity else None
                    ),
                    "note": note,
                },
            )
    except sa.exc.IntegrityError as exc:
        raise ApprovalError(
            f"the rollout of {state.model} version {state.candidate_version} was approved by "
            "someone else at the same moment; see 'mlp routing history'"
        ) from exc
    logger.info(
        "promotion of %s version %s approved by %s, OS user %s (rollout started by %s)",
        state.model,
        state.candidate_version,
        approval.approver,
        _os_user(identity),
        state.started_by,
    )
    return approval


def _check_os_user(
    state: RolloutState, *, approver: str, identity: EnvironmentIdentity | None
) -> None:
    """Reject an approval from the OS user that started the rollout, when that user is known."""
    started = state.started_identity
    if started is None or started.os_user is None:
        return
    approver_os_user = identity.os_user if identity else None
    where = (
        f"the rollout of {state.model} version {state.candidate_version} (routing "
        f"v{state.started.version}) was started by {state.started_by!r} as OS user "
        f"{started.os_user!r}"
    )
    if approver_os_user is None:
        raise ApprovalError(
            f"{where}, but the OS user running this approval is unknown, so it cannot be "
            "compared with the starter's; approve from a login session that sets USER or LOGNAME"
        )
    if approver_os_user == started.os_user:
        raise ApprovalError(
            f"{where}, and approver {approver!r} runs as the same OS user; the approval must "
            "come from another person's own OS account, whatever name --by gives"
        )


def approve_rollout(settings: Settings, model: str, *, approver: str, note: str = "") -> Approval:
    """Approve the promotion of a model's rollout in progress, as this process's OS user.

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
    return record_approval(
        engine, state, approver=approver, note=note, identity=environment_identity(settings)
    )
