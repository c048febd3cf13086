"""What happens to a candidate after its gates: champion (if none exists) or challenger.

A first champion is written straight to the routing config. Every later candidate that passes
becomes the challenger, and the rollout (shadow, canary stages, promotion) takes it from there.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from mlp_orchestration import registry
from mlp_orchestration.evaluation import GateReport
from mlp_orchestration.routing import RoutingStage, RoutingStore
from mlp_orchestration.routing.config import RoutingTarget
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import CandidateModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionOutcome:
    """The registry and routing state after the promotion step."""

    action: str  # "champion", "challenger" or "blocked"
    version: str
    champion_version: str | None
    challenger_version: str | None
    routing_version: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_evidence(
    candidate: CandidateModel, report: GateReport, **extra: Any
) -> dict[str, Any]:
    """The evidence a routing change or audit record carries for a candidate."""
    return {
        "candidate_version": candidate.version,
        "mlflow_run_id": candidate.run_id,
        "snapshot_hash": candidate.snapshot_hash,
        "as_of": candidate.as_of,
        "holdout": {
            "pr_auc": candidate.metrics["holdout_pr_auc"],
            "roc_auc": candidate.metrics["holdout_roc_auc"],
        },
        "decision_threshold": candidate.decision_threshold,
        "gate_report": report.summary(),
        **extra,
    }


def promote_after_gates(
    settings: Settings,
    routing: RoutingStore,
    spec: ModelSpec,
    candidate: CandidateModel,
    report: GateReport,
    *,
    actor: str,
    context: dict[str, Any] | None = None,
) -> PromotionOutcome:
    """Make a gated candidate champion when there is none, otherwise challenger."""
    if not report.passed:
        reason = "gates failed: " + "; ".join(f["message"] for f in report.failures)
        logger.warning("%s v%s not promoted: %s", spec.name, candidate.version, reason)
        return PromotionOutcome(
            "blocked", candidate.version, report.champion_version, None, None, reason
        )

    client = registry.configure(settings)
    champion = registry.alias_version(client, spec.name, registry.CHAMPION)
    evidence = candidate_evidence(candidate, report, **(context or {}))
    if champion is None:
        return _first_champion(client, routing, spec, candidate, evidence, actor=actor)

    previous = registry.alias_version(client, spec.name, registry.CHALLENGER)
    registry.set_alias(client, spec.name, registry.CHALLENGER, candidate.version)
    replaced = (
        f"; replaces challenger v{previous}" if previous and previous != candidate.version else ""
    )
    reason = (
        f"v{candidate.version} passed every gate against champion v{champion}{replaced}; "
        "it waits for shadow evaluation and the canary rollout"
    )
    current = routing.current(spec.name)
    return PromotionOutcome(
        "challenger",
        candidate.version,
        champion,
        candidate.version,
        current.version if current else None,
        reason,
    )


def _first_champion(
    client: Any,
    routing: RoutingStore,
    spec: ModelSpec,
    candidate: CandidateModel,
    evidence: dict[str, Any],
    *,
    actor: str,
) -> PromotionOutcome:
    reason = f"first champion: v{candidate.version} passed every gate and no champion existed"
    current = routing.current(spec.name)
    config = routing.write(
        spec.name,
        RoutingTarget(champion_version=candidate.version),
        expected_version=current.version if current else 0,
        stage=RoutingStage.INITIAL if current is None else RoutingStage.PROMOTED,
        actor=actor,
        reason=reason,
        evidence=evidence,
    )
    # The alias moves after the routing write succeeds, so a conflict leaves the registry as it was.
    registry.set_alias(client, spec.name, registry.CHAMPION, candidate.version)
    registry.remove_alias(client, spec.name, registry.CHALLENGER)
    return PromotionOutcome(
        "champion", candidate.version, candidate.version, None, config.version, reason
    )
