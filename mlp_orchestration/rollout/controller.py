"""One evaluation of a model's rollout: read the stores, decide, apply, record.

``step_rollout`` is what the rollout sensor runs on every tick and what the rollout driver runs
in its loop. It either changes nothing (hold, idle), asks its caller to run the shadow
evaluation, or makes exactly one routing write. Two evaluators racing on the same stage are
safe: the routing store's compare-and-set lets one write through, and the other reports
``SUPERSEDED`` and acts on the new config at its next step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import pandas as pd

from mlp_orchestration import registry
from mlp_orchestration.errors import NotFoundError, RoutingConflictError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.aliases import (
    REGISTRY_ERRORS,
    RegistryUnavailableError,
    reconcile_aliases,
)
from mlp_orchestration.rollout.approval import find_approval
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.decision import Action, StageDecision, decide_stage
from mlp_orchestration.rollout.state import (
    RolloutState,
    active_rollout,
    stage_label,
    was_rolled_out,
)
from mlp_orchestration.rollout.transitions import (
    GATE_VERDICT_TAG,
    advance_stage,
    promote_rollout,
    rollback_rollout,
    start_rollout,
)
from mlp_orchestration.rollout.windows import ArmWindow, count_arm_requests, read_arm_rows
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)


class StepAction(StrEnum):
    IDLE = "idle"
    STARTED = "started"
    HOLD = "hold"
    EVALUATE_SHADOW = "evaluate_shadow"
    ADVANCED = "advanced"
    ROLLED_BACK = "rolled_back"
    AWAITING_APPROVAL = "awaiting_approval"
    PROMOTED = "promoted"
    SUPERSEDED = "superseded"


TERMINAL_ACTIONS = frozenset({StepAction.ROLLED_BACK, StepAction.PROMOTED})


@dataclass(frozen=True)
class StepOutcome:
    """What one evaluation did, and on which routing version."""

    action: StepAction
    message: str
    candidate_version: str | None = None
    routing_version: int | None = None
    written: RoutingConfig | None = None
    decision: StageDecision | None = None
    shadow_pairs: int | None = None
    # Identifies one shadow evaluation request: the shadow config and the last verdict before it.
    evaluation_key: str | None = None

    @property
    def stage(self) -> str | None:
        return None if self.written is None else stage_label(self.written)


def step_rollout(
    ctx: RolloutContext, *, actor: str, now: datetime | None = None, auto_start: bool = False
) -> StepOutcome:
    """Evaluate the model's rollout once and apply the decision.

    Args:
        actor: who is recorded for any routing write (e.g. the sensor's name).
        now: the evaluation time (default: the clock); stages hold for ``min_duration`` from
            the creation of their routing config.
        auto_start: start a rollout for a challenger that passed its gates and was never
            rolled out, when none is in progress.
    """
    now = now or utcnow()
    history = ctx.store.history(ctx.model)
    state = active_rollout(history)
    try:
        if state is None:
            return _idle(ctx, history, actor=actor, auto_start=auto_start)
        if state.phase == RoutingStage.SHADOW:
            return _step_shadow(ctx, state, actor=actor)
        return _step_canary(ctx, state, actor=actor, now=now)
    except RoutingConflictError as exc:
        logger.info("rollout step of %s superseded by another writer: %s", ctx.model, exc)
        return StepOutcome(
            StepAction.SUPERSEDED,
            str(exc),
            state.candidate_version if state else None,
            state.current.version if state else None,
        )


def _idle(
    ctx: RolloutContext, history: list[RoutingConfig], *, actor: str, auto_start: bool
) -> StepOutcome:
    if not history:
        return StepOutcome(StepAction.IDLE, f"{ctx.model} has no routing config yet")
    latest = history[-1]
    problem = _repair_aliases(ctx, latest)
    if problem is not None:
        return StepOutcome(
            StepAction.IDLE,
            f"no rollout in progress; routing v{latest.version} is {latest.stage.value}; "
            f"aliases not checked: {problem}",
            routing_version=latest.version,
        )
    if auto_start:
        candidate = registry.alias_version(ctx.client, ctx.model, registry.CHALLENGER)
        if (
            candidate is not None
            and not was_rolled_out(history, candidate)
            and ctx.version_tags(candidate).get(GATE_VERDICT_TAG) == "passed"
        ):
            config = start_rollout(ctx, candidate_version=candidate, actor=actor)
            return StepOutcome(
                StepAction.STARTED,
                f"started the rollout of version {candidate} in shadow",
                candidate,
                latest.version,
                config,
            )
    return StepOutcome(
        StepAction.IDLE,
        f"no rollout in progress; routing v{latest.version} is {latest.stage.value}",
        routing_version=latest.version,
    )


def _repair_aliases(ctx: RolloutContext, latest: RoutingConfig) -> str | None:
    """Reconcile the aliases with the latest config; return the registry problem, if any."""
    try:
        ctx.checked_client()
        changes = reconcile_aliases(ctx.client, ctx.model, latest)
    except (RegistryUnavailableError, NotFoundError) as exc:
        logger.warning("aliases of %s not checked against routing: %s", ctx.model, exc)
        return str(exc)
    except REGISTRY_ERRORS as exc:
        logger.warning("aliases of %s not repaired: %s", ctx.model, exc)
        return str(exc)
    if changes:
        logger.warning(
            "aliases of %s repaired to match routing v%d: %s",
            ctx.model,
            latest.version,
            ", ".join(changes),
        )
    return None


def _step_shadow(ctx: RolloutContext, state: RolloutState, *, actor: str) -> StepOutcome:
    candidate, current = state.candidate_version, state.current
    shadow_versions = [config.version for config in state.shadow_configs()]
    verdicts = [
        event
        for event in events.list_events(
            ctx.engine,
            ctx.model,
            candidate_version=candidate,
            since_routing_version=state.started.version,
        )
        if event.stage == RoutingStage.SHADOW.value
        and event.routing_version in shadow_versions
        and event.decision in events.SHADOW_VERDICTS
    ]
    latest = verdicts[-1] if verdicts else None
    if latest is not None and latest.decision == events.SHADOW_PASSED:
        share = ctx.spec.rollout.stages[0]
        config = advance_stage(
            ctx,
            state,
            share=share,
            actor=actor,
            reason=f"shadow gate passed for version {candidate}; canary at {share:.0%}",
            evidence={"shadow_event_id": latest.id, "shadow": _shadow_metrics(latest)},
        )
        return StepOutcome(StepAction.ADVANCED, config.reason, candidate, current.version, config)
    if latest is not None and latest.decision == events.SHADOW_FAILED:
        failures = "; ".join(str(b.get("message")) for b in latest.breaches)
        config = rollback_rollout(
            ctx,
            state,
            actor=actor,
            reason=f"shadow gate failed for version {candidate}: {failures}",
            breaches=[_shadow_breach(b) for b in latest.breaches],
            evidence={"shadow_event_id": latest.id, "shadow": _shadow_metrics(latest)},
        )
        return StepOutcome(
            StepAction.ROLLED_BACK, _rollback_message(config), candidate, current.version, config
        )
    pairs = count_arm_requests(
        ctx.engine, ctx.model, arm="shadow", routing_versions=shadow_versions
    )
    needed = ctx.spec.shadow.min_requests
    evaluated = (latest.metrics.get("summary") or {}).get("requests", 0) if latest else 0
    if pairs >= needed and pairs > evaluated:
        return StepOutcome(
            StepAction.EVALUATE_SHADOW,
            f"{pairs} shadow requests of version {candidate} ready to evaluate",
            candidate,
            current.version,
            shadow_pairs=pairs,
            evaluation_key=f"r{current.version}-e{latest.id if latest else 0}",
        )
    return StepOutcome(
        StepAction.HOLD,
        f"shadow of version {candidate}: {pairs} of {needed} shadow requests",
        candidate,
        current.version,
        shadow_pairs=pairs,
    )


def _shadow_metrics(event: events.RolloutEvent) -> dict[str, object]:
    summary = event.metrics.get("summary") or {}
    return {
        key: summary.get(key)
        for key in ("requests", "agreement", "flipped", "score_psi", "correlation", "alert_rates")
    }


def _shadow_breach(check: dict[str, object]) -> dict[str, object]:
    return {
        "metric": check.get("check"),
        "value": check.get("value"),
        "limit": check.get("limit"),
        "comparison": check.get("comparison"),
        "message": check.get("message"),
    }


def _reference_versions(ctx: RolloutContext, state: RolloutState) -> tuple[list[int], pd.DataFrame]:
    """Champion-arm rows of the current stage, or of earlier stages when it has too few.

    At the last stage (share 1.0) the champion serves nothing, so the reference comes from the
    rollout's earlier configs, newest first, until it holds ``min_requests`` rows.
    """
    versions: list[int] = []
    frames: list[pd.DataFrame] = []
    rows = 0
    for config in reversed(state.configs):
        frame = read_arm_rows(
            ctx.engine,
            ctx.model,
            arm="champion",
            routing_versions=[config.version],
            model_version=state.champion_version,
        )
        if frame.empty and versions:
            continue
        versions.append(config.version)
        frames.append(frame)
        rows += len(frame)
        if rows >= ctx.spec.rollout.min_requests:
            break
    filled = [frame for frame in frames if not frame.empty]
    return versions, pd.concat(filled, ignore_index=True) if filled else frames[0]


def _step_canary(
    ctx: RolloutContext, state: RolloutState, *, actor: str, now: datetime
) -> StepOutcome:
    candidate, current = state.candidate_version, state.current
    canary_frame = read_arm_rows(
        ctx.engine, ctx.model, arm="canary", routing_versions=[current.version]
    )
    reference_versions, champion_frame = _reference_versions(ctx, state)
    canary = ArmWindow.from_frame(
        canary_frame,
        arm="canary",
        decision_threshold=ctx.decision_threshold(candidate),
        routing_versions=[current.version],
    )
    champion = ArmWindow.from_frame(
        champion_frame,
        arm="champion",
        decision_threshold=ctx.decision_threshold(state.champion_version),
        routing_versions=reference_versions,
    )
    approval = find_approval(ctx.engine, state)
    decision = decide_stage(
        canary=canary,
        champion=champion,
        share=current.canary_share,
        rollout=ctx.spec.rollout,
        elapsed=now - current.created_at,
        approved=approval is not None,
    )
    base = dict(candidate_version=candidate, routing_version=current.version, decision=decision)
    if decision.action == Action.HOLD:
        return StepOutcome(StepAction.HOLD, f"{stage_label(current)}: {decision.reason}", **base)
    evidence = {**decision.evidence(), "reference_routing_versions": reference_versions}
    if decision.action == Action.ROLLBACK:
        first = decision.breaches[0]
        config = rollback_rollout(
            ctx,
            state,
            actor=actor,
            reason=(
                f"automatic rollback of version {candidate} at {stage_label(current)}: "
                f"{first.message}"
            ),
            breaches=evidence["breaches"],
            evidence=evidence,
        )
        return StepOutcome(
            StepAction.ROLLED_BACK, _rollback_message(config), written=config, **base
        )
    if decision.action == Action.ADVANCE:
        assert decision.next_share is not None
        config = advance_stage(
            ctx,
            state,
            share=decision.next_share,
            actor=actor,
            reason=decision.reason,
            evidence=evidence,
        )
        return StepOutcome(StepAction.ADVANCED, config.reason, written=config, **base)
    if decision.action == Action.AWAIT_APPROVAL:
        _record_waiting(ctx, state, actor=actor, evidence=evidence)
        return StepOutcome(StepAction.AWAITING_APPROVAL, decision.reason, **base)
    try:
        config = promote_rollout(ctx, state, actor=actor, decision=decision, approval=approval)
    except RegistryUnavailableError as exc:
        if exc.written is not None:
            raise
        # Nothing was written: the candidate keeps its healthy last stage until the registry
        # responds, and a later evaluation promotes it.
        return StepOutcome(StepAction.HOLD, f"promotion waits for the registry: {exc}", **base)
    return StepOutcome(StepAction.PROMOTED, config.reason, written=config, **base)


def _rollback_message(config: RoutingConfig) -> str:
    pending = config.evidence.get("aliases_pending")
    if not pending:
        return config.reason
    return (
        f"{config.reason}; the challenger alias was left in place because {pending}; it is "
        f"removed at the next idle evaluation once the registry responds, or by 'mlp routing "
        f"reconcile {config.model}'"
    )


def _record_waiting(
    ctx: RolloutContext, state: RolloutState, *, actor: str, evidence: dict[str, object]
) -> None:
    """Record the wait for approval once per stage config, not on every evaluation."""
    current = state.current
    already = events.list_events(
        ctx.engine,
        ctx.model,
        candidate_version=state.candidate_version,
        since_routing_version=current.version,
        decision=events.AWAITING_APPROVAL,
    )
    if any(event.routing_version == current.version for event in already):
        return
    events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=state.candidate_version,
        stage=stage_label(current),
        decision=events.AWAITING_APPROVAL,
        actor=actor,
        routing_version=current.version,
        metrics=evidence,
    )
