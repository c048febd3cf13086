"""The routing writes of a rollout: start (shadow), next canary stage, rollback and promotion.

Each transition is one compare-and-set write of the routing config based on the rollout's
current version, so two evaluators acting on the same stage cannot both apply a decision: the
second gets ``RoutingConflictError``. The rollout event follows the routing write, and the MLflow
aliases move last (see ``aliases``). Should the registry fail or a process stop in between,
``reconcile_aliases`` repairs the aliases.
"""

from __future__ import annotations

import logging
from typing import Any

from mlp_orchestration import registry
from mlp_orchestration.errors import ConfigurationError, NotFoundError, RoutingConflictError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.aliases import (
    RegistryUnavailableError,
    follow_routing,
)
from mlp_orchestration.rollout.approval import Approval
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.decision import StageDecision
from mlp_orchestration.rollout.identity import EnvironmentIdentity
from mlp_orchestration.rollout.state import (
    RolloutState,
    active_rollout,
    stage_label,
)
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage

logger = logging.getLogger(__name__)

GATE_VERDICT_TAG = "gate_verdict"
# Version tags copied into the promotion evidence as the gate report summary.
_GATE_TAGS = (
    "gate_verdict",
    "holdout_pr_auc",
    "holdout_roc_auc",
    "decision_threshold",
    "snapshot_hash",
    "git_revision",
    "as_of",
)


def gate_summary(tags: dict[str, str]) -> dict[str, str]:
    """The gate report summary a version carries in its MLflow tags."""
    return {
        key: value
        for key, value in sorted(tags.items())
        if key in _GATE_TAGS or key.startswith("gate_")
    }


def plan_evidence(ctx: RolloutContext) -> dict[str, Any]:
    rollout = ctx.spec.rollout
    return {
        "stages": list(rollout.stages),
        "min_requests": rollout.min_requests,
        "min_duration_s": rollout.min_duration.total_seconds(),
        "requires_approval": rollout.requires_approval,
        "shadow_min_requests": ctx.spec.shadow.min_requests,
    }


def start_rollout(
    ctx: RolloutContext,
    *,
    candidate_version: str,
    actor: str,
    reason: str | None = None,
    identity: EnvironmentIdentity | None = None,
) -> RoutingConfig:
    """Put a challenger in shadow behind the champion: the first config of its rollout.

    A rollout of the same candidate already in progress is returned as it is.

    Args:
        identity: the OS user and MLP_ACTOR of the person starting the rollout, recorded in
            the evidence so that an approval from the same OS user is rejected. Automated
            starters (the rollout sensor, the demo driver) pass None.

    Raises:
        NotFoundError: the model has no routing config (no champion) or the version is missing.
        ConfigurationError: the version did not pass its gates, is the champion, or another
            version holds the ``challenger`` alias.
        RoutingConflictError: a rollout of another version is in progress.
        RegistryUnavailableError: the MLflow registry did not respond; nothing was changed.
    """
    history = ctx.store.history(ctx.model)
    if not history:
        ctx.store.require_current(ctx.model)
    current = history[-1]
    state = active_rollout(history)
    if state is not None:
        if state.candidate_version == candidate_version:
            logger.info(
                "rollout of %s v%s already in progress at routing v%d",
                ctx.model,
                candidate_version,
                current.version,
            )
            return current
        raise RoutingConflictError(
            f"{ctx.model} is rolling out version {state.candidate_version} (routing "
            f"v{current.version}, {stage_label(current)}); wait for it to finish or roll it back "
            f"before starting version {candidate_version}"
        )
    if candidate_version == current.champion_version:
        raise ConfigurationError(
            f"version {candidate_version} is already the champion of {ctx.model}; roll out a "
            "newer version"
        )
    _check_registry_unchanged(
        ctx, current, action=f"start the rollout of {ctx.model} version {candidate_version}"
    )
    tags = ctx.version_tags(candidate_version)
    if tags.get(GATE_VERDICT_TAG) != "passed":
        raise ConfigurationError(
            f"{ctx.model} version {candidate_version} has {GATE_VERDICT_TAG}="
            f"{tags.get(GATE_VERDICT_TAG)!r}; only a version that passed its gates can be "
            "rolled out"
        )
    ctx.decision_threshold(candidate_version)
    ctx.decision_threshold(current.champion_version)
    _claim_challenger_alias(ctx, candidate_version)
    started_by = {"started_by_identity": identity.as_dict()} if identity else {}
    config = ctx.store.update(
        ctx.model,
        expected_version=current.version,
        stage=RoutingStage.SHADOW,
        actor=actor,
        reason=reason
        or f"shadow stage of version {candidate_version}: it scores the champion's traffic",
        evidence={
            "candidate_version": candidate_version,
            "champion_version": current.champion_version,
            "gate_report": gate_summary(tags),
            "plan": plan_evidence(ctx),
            **started_by,
        },
        canary_version=None,
        canary_share=0.0,
        shadow_versions=(candidate_version,),
    )
    events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=candidate_version,
        stage="shadow",
        decision=events.STARTED,
        actor=actor,
        routing_version=config.version,
        metrics={
            "champion_version": current.champion_version,
            "plan": plan_evidence(ctx),
            **started_by,
        },
    )
    return config


def _check_registry_unchanged(ctx: RolloutContext, current: RoutingConfig, *, action: str) -> None:
    """Check the registry before a routing write; on failure, say that nothing was changed."""
    try:
        ctx.checked_client()
    except RegistryUnavailableError as exc:
        raise RegistryUnavailableError(
            f"cannot {action}: {exc}. Nothing was changed: routing stays at "
            f"v{current.version} ({stage_label(current)}) and no alias moved. Start the "
            "registry, or point MLP_MLFLOW_TRACKING_URI / MLP_MLFLOW_REGISTRY_URI at it, and "
            "try again."
        ) from exc


def _claim_challenger_alias(ctx: RolloutContext, candidate_version: str) -> None:
    holder = registry.alias_version(ctx.client, ctx.model, registry.CHALLENGER)
    if holder is None:
        registry.set_alias(ctx.client, ctx.model, registry.CHALLENGER, candidate_version)
    elif holder != candidate_version:
        raise ConfigurationError(
            f"the {registry.CHALLENGER!r} alias of {ctx.model} points at version {holder}, not "
            f"{candidate_version}; roll out version {holder} or move the alias first"
        )


def advance_stage(
    ctx: RolloutContext,
    state: RolloutState,
    *,
    share: float,
    actor: str,
    reason: str,
    evidence: dict[str, Any],
) -> RoutingConfig:
    """Write the next canary stage: the candidate as canary with ``share`` of the traffic."""
    current = state.current
    config = ctx.store.update(
        ctx.model,
        expected_version=current.version,
        stage=RoutingStage.CANARY,
        actor=actor,
        reason=reason,
        evidence=events.json_safe(
            {
                "candidate_version": state.candidate_version,
                "from_stage": stage_label(current),
                **evidence,
            }
        ),
        canary_version=state.candidate_version,
        canary_share=share,
        shadow_versions=tuple(v for v in current.shadow_versions if v != state.candidate_version),
    )
    events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=state.candidate_version,
        stage=stage_label(current),
        decision=events.ADVANCED,
        actor=actor,
        routing_version=current.version,
        metrics={**evidence, "written_routing_version": config.version, "next_share": share},
    )
    return config


def rollback_rollout(
    ctx: RolloutContext,
    state: RolloutState,
    *,
    actor: str,
    reason: str,
    breaches: list[dict[str, Any]],
    evidence: dict[str, Any],
) -> RoutingConfig:
    """Take the candidate out of traffic (stage ROLLED_BACK) and remove its challenger alias.

    The registry is checked first, but the routing write happens even when it does not respond,
    because a breach must leave traffic without waiting for MLflow. The evidence then records
    ``aliases_pending`` with the registry error, and ``reconcile_aliases`` removes the alias once
    the registry responds. The check delays the write by about 18 s at most (``aliases``).
    """
    current = state.current
    pending = _registry_problem(ctx)
    config = ctx.store.update(
        ctx.model,
        expected_version=current.version,
        stage=RoutingStage.ROLLED_BACK,
        actor=actor,
        reason=reason,
        evidence=events.json_safe(
            {
                "candidate_version": state.candidate_version,
                "from_stage": stage_label(current),
                "breaches": breaches,
                **evidence,
                **({"aliases_pending": pending} if pending else {}),
            }
        ),
        canary_version=None,
        canary_share=0.0,
        shadow_versions=tuple(v for v in current.shadow_versions if v != state.candidate_version),
    )
    events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=state.candidate_version,
        stage=stage_label(current),
        decision=events.ROLLED_BACK,
        actor=actor,
        routing_version=current.version,
        breaches=breaches,
        metrics={**evidence, "written_routing_version": config.version},
    )
    logger.warning(
        "rolled back %s version %s at %s: %s",
        ctx.model,
        state.candidate_version,
        stage_label(current),
        reason,
    )
    if pending:
        logger.warning(
            "the challenger alias of %s still points at %s: %s; it is removed once the registry "
            "responds",
            ctx.model,
            state.candidate_version,
            pending,
        )
    else:
        _follow_or_warn(ctx, config)
    return config


def _registry_problem(ctx: RolloutContext) -> str | None:
    """Return why the registry cannot move aliases now, or None when it responds."""
    try:
        ctx.checked_client()
    except (RegistryUnavailableError, NotFoundError) as exc:
        return str(exc)
    return None


def _follow_or_warn(ctx: RolloutContext, config: RoutingConfig) -> None:
    """Move the aliases after an automatic routing write; a registry failure is only logged.

    The decision is already in effect and recorded, and the next idle evaluation repairs the
    aliases, so failing the sensor tick would only hide the decision from its alert.
    """
    try:
        follow_routing(ctx.settings, ctx.client, config, ctx.store)
    except RegistryUnavailableError as exc:
        logger.warning("%s", exc)


def _compact_event(event: events.RolloutEvent) -> dict[str, Any]:
    guards = event.metrics.get("guards") or {}
    return {
        "stage": event.stage,
        "decision": event.decision,
        "routing_version": event.routing_version,
        "written_routing_version": event.metrics.get("written_routing_version"),
        "actor": event.actor,
        "decided_at": event.decided_at.isoformat(),
        "canary_requests": event.metrics.get("canary_requests"),
        "guards": {name: result.get("value") for name, result in guards.items()},
        "breaches": event.breaches,
    }


def promote_rollout(
    ctx: RolloutContext,
    state: RolloutState,
    *,
    actor: str,
    decision: StageDecision,
    approval: Approval | None,
) -> RoutingConfig:
    """Make the candidate the champion: routing (stage PROMOTED), then the MLflow aliases.

    The evidence holds the gate report summary from the version's tags, the shadow evaluation
    summary, every stage decision of the rollout and the approval, if one was needed.

    Raises:
        RegistryUnavailableError: the MLflow registry did not respond before the routing write;
            nothing was changed and the candidate keeps its last canary stage.
    """
    candidate = state.candidate_version
    current = state.current
    _check_registry_unchanged(ctx, current, action=f"promote {ctx.model} version {candidate}")
    rollout_events = events.list_events(
        ctx.engine,
        ctx.model,
        candidate_version=candidate,
        since_routing_version=state.started.version,
    )
    shadow = [e for e in rollout_events if e.decision == events.SHADOW_PASSED]
    stage_decisions = [
        _compact_event(e) for e in rollout_events if e.decision != events.SHADOW_INSUFFICIENT
    ]
    evidence = {
        "candidate_version": candidate,
        "previous_champion": current.champion_version,
        "rollout_started_version": state.started.version,
        "rollout_started_by": state.started_by,
        "gate_report": gate_summary(ctx.version_tags(candidate)),
        "shadow": _shadow_brief(shadow[-1]) if shadow else None,
        "stages": stage_decisions,
        "final_stage": decision.evidence(),
        "approval": approval.as_dict() if approval else None,
    }
    stages_passed = sum(1 for e in rollout_events if e.decision == events.ADVANCED) + 1
    config = ctx.store.update(
        ctx.model,
        expected_version=current.version,
        stage=RoutingStage.PROMOTED,
        actor=actor,
        reason=(
            f"promoted version {candidate} to champion (was {current.champion_version}) after "
            f"its shadow gate and {stages_passed} healthy rollout steps"
            + (f", approved by {approval.approver}" if approval else "")
        ),
        evidence=events.json_safe(evidence),
        champion_version=candidate,
        canary_version=None,
        canary_share=0.0,
        shadow_versions=(),
    )
    events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=candidate,
        stage=stage_label(current),
        decision=events.PROMOTED,
        actor=actor,
        routing_version=current.version,
        metrics={
            **decision.evidence(),
            "written_routing_version": config.version,
            "approval": approval.as_dict() if approval else None,
        },
    )
    logger.info(
        "promoted %s version %s to champion at routing v%d", ctx.model, candidate, config.version
    )
    _follow_or_warn(ctx, config)
    return config


def _shadow_brief(event: events.RolloutEvent) -> dict[str, Any]:
    summary = event.metrics.get("summary") or {}
    labels = summary.get("labels") or {}
    return {
        "routing_version": event.routing_version,
        "decided_at": event.decided_at.isoformat(),
        "requests": summary.get("requests"),
        "agreement": summary.get("agreement"),
        "flipped": (summary.get("flipped") or {}).get("total"),
        "score_correlation": (summary.get("correlation") or {}).get("pearson_log_odds"),
        "score_psi": summary.get("score_psi"),
        "labelled_positives": labels.get("positives"),
        "champion_pr_auc": (labels.get("champion") or {}).get("pr_auc"),
        "challenger_pr_auc": (labels.get("challenger") or {}).get("pr_auc"),
        "report_path": event.metrics.get("report_path"),
    }
