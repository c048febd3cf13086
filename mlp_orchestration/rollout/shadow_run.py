"""One shadow evaluation: read the pairs, compare, apply the gate, write the report, record it.

The shadow_evaluation asset and the rollout driver (without a Dagster instance) both call
``run_shadow_evaluation``; the rollout step then acts on the recorded verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlp_orchestration import registry
from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.shadow import (
    ShadowGate,
    ShadowSummary,
    count_shadow_errors,
    evaluate_shadow,
    pair_scores,
    read_shadow_rows,
    shadow_gate,
)
from mlp_orchestration.rollout.shadow_report import render_shadow_report, write_shadow_report
from mlp_orchestration.rollout.state import RolloutState, active_rollout
from mlp_orchestration.routing.config import RoutingStage
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

_VERDICT_DECISIONS = {
    "passed": events.SHADOW_PASSED,
    "failed": events.SHADOW_FAILED,
    "insufficient": events.SHADOW_INSUFFICIENT,
}


@dataclass(frozen=True)
class ShadowEvaluation:
    """A shadow evaluation with its gate verdict, report and recorded event."""

    summary: ShadowSummary
    gate: ShadowGate
    report_path: Path
    routing_version: int | None
    event_id: int | None

    def brief(self) -> dict[str, Any]:
        """The figures an auditor reads first, as plain JSON."""
        s = self.summary
        return events.json_safe(
            {
                "verdict": self.gate.verdict,
                "challenger_version": s.challenger_version,
                "champion_version": s.champion_version,
                "requests": s.requests,
                "agreement": s.agreement,
                "flipped": s.flipped["total"],
                "flip_rate": s.flipped["rate"],
                "score_correlation": s.correlation["pearson_log_odds"],
                "score_psi": s.score_psi,
                "labelled_positives": s.labels["positives"],
                "champion_pr_auc": s.labels["champion"]["pr_auc"],
                "challenger_pr_auc": s.labels["challenger"]["pr_auc"],
                "failures": [check.message for check in self.gate.failures],
                "report_path": str(self.report_path),
                "routing_version": self.routing_version,
            }
        )


@dataclass(frozen=True)
class _Target:
    challenger: str
    champion: str
    routing_versions: list[int] | None
    state: RolloutState | None


def _resolve(ctx: RolloutContext, challenger: str | None, champion: str | None) -> _Target:
    history = ctx.store.history(ctx.model)
    state = active_rollout(history)
    in_shadow = state is not None and state.shadow_configs()
    if challenger is None:
        if in_shadow:
            challenger = state.candidate_version
        else:
            challenger = registry.alias_version(ctx.client, ctx.model, registry.CHALLENGER)
        if challenger is None:
            raise NotFoundError(
                f"{ctx.model} has no challenger in shadow and no MLflow alias "
                f"{registry.CHALLENGER!r}; start a rollout or name the challenger version"
            )
    if champion is None:
        if not history:
            raise NotFoundError(f"{ctx.model} has no routing config, so no champion to compare")
        champion = history[-1].champion_version
    routing_versions = None
    if in_shadow and state.candidate_version == challenger:
        routing_versions = [config.version for config in state.shadow_configs()]
    return _Target(challenger, champion, routing_versions, state)


def run_shadow_evaluation(
    ctx: RolloutContext,
    *,
    actor: str,
    challenger_version: str | None = None,
    champion_version: str | None = None,
    record: bool = True,
) -> ShadowEvaluation:
    """Evaluate the challenger's shadow scores against the champion and apply the shadow gate.

    Without versions, the challenger is the candidate of the rollout in its shadow stage (or the
    MLflow alias ``challenger``) and the champion is the routing config's champion; the pairs
    come from the rollout's SHADOW routing versions when there is one.

    Raises:
        NotFoundError: no challenger, no champion, or a version without a decision threshold.
    """
    target = _resolve(ctx, challenger_version, champion_version)
    rows = read_shadow_rows(
        ctx.engine,
        ctx.model,
        challenger_version=target.challenger,
        champion_version=target.champion,
        routing_versions=target.routing_versions,
    )
    pairs = pair_scores(rows, challenger_version=target.challenger)
    summary = evaluate_shadow(
        pairs,
        spec=ctx.spec,
        champion_version=target.champion,
        challenger_version=target.challenger,
        champion_threshold=ctx.decision_threshold(target.champion),
        challenger_threshold=ctx.decision_threshold(target.challenger),
        shadow_errors=count_shadow_errors(rows, challenger_version=target.challenger),
        routing_versions=target.routing_versions or (),
    )
    gate = shadow_gate(summary, ctx.spec.shadow)
    generated_at = utcnow()
    page = render_shadow_report(
        summary,
        gate,
        champion_scores=pairs["champion_score"].to_numpy(),
        challenger_scores=pairs["challenger_score"].to_numpy(),
        generated_at=generated_at,
    )
    path = write_shadow_report(ctx.settings, summary, page, generated_at)
    routing_version = target.routing_versions[-1] if target.routing_versions else None
    evaluation = ShadowEvaluation(summary, gate, path, routing_version, None)
    logger.info(
        "shadow evaluation of %s v%s against v%s: %s over %d pairs (report %s)",
        ctx.model,
        target.challenger,
        target.champion,
        gate.verdict,
        summary.requests,
        path,
    )
    if not record:
        return evaluation
    event_id = events.record_event(
        ctx.engine,
        model=ctx.model,
        candidate_version=target.challenger,
        stage=RoutingStage.SHADOW.value,
        decision=_VERDICT_DECISIONS[gate.verdict],
        actor=actor,
        routing_version=routing_version,
        metrics={"summary": summary.as_dict(), "gate": gate.as_dict(), "report_path": str(path)},
        breaches=[check.__dict__ for check in gate.failures],
    )
    return ShadowEvaluation(summary, gate, path, routing_version, event_id)
