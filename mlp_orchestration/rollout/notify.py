"""Alerts for rollout decisions: each stage change, rollback and promotion."""

from __future__ import annotations

import logging

from mlp_orchestration import registry
from mlp_orchestration.alerts import (
    Alert,
    AlertLogError,
    build_alert_sink,
    promotion_alert,
    rollout_alert,
)
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.controller import StepAction, StepOutcome

logger = logging.getLogger(__name__)


def rollout_decision_alert(ctx: RolloutContext, outcome: StepOutcome) -> Alert | None:
    """Build the alert of a step that changed the routing config, or None for other steps."""
    config = outcome.written
    if config is None or outcome.candidate_version is None:
        return None
    evidence = config.evidence
    if outcome.action == StepAction.PROMOTED:
        approval = evidence.get("approval") or {}
        shadow = evidence.get("shadow") or {}
        return promotion_alert(
            ctx.model,
            version=config.champion_version,
            previous_version=evidence.get("previous_champion"),
            approved_by=approval.get("approver") or f"{config.actor} (automatic, healthy guards)",
            evidence={"shadow evaluation": shadow.get("report_path")},
            version_url=registry.version_url(ctx.settings, ctx.model, config.champion_version),
            routing_version=config.version,
            reason=config.reason,
        )
    if outcome.action not in (StepAction.ADVANCED, StepAction.ROLLED_BACK):
        return None
    guards = evidence.get("guards") or {}
    return rollout_alert(
        ctx.model,
        from_stage=evidence.get("from_stage", "shadow"),
        to_stage=config.canary_share if outcome.action == StepAction.ADVANCED else "rolled back",
        candidate_version=outcome.candidate_version,
        metrics={name: result.get("value") for name, result in guards.items()},
        breaches=evidence.get("breaches") or [],
        routing_version=config.version,
        champion_version=config.champion_version,
        reason=config.reason,
    )


def send_rollout_alert(ctx: RolloutContext, outcome: StepOutcome) -> None:
    """Send the alert of a routing change; a failed delivery is logged, never raised."""
    alert = rollout_decision_alert(ctx, outcome)
    if alert is None:
        return
    try:
        result = build_alert_sink(ctx.settings, ctx.engine).send(alert)
    except AlertLogError as exc:
        logger.warning("rollout alert for %s not sent: %s", ctx.model, exc)
        return
    logger.info("rollout alert for %s: %s", ctx.model, result.status)
