"""The decision of one canary stage: hold, advance, roll back, promote or wait for approval.

A stage holds until its canary arm has served ``min_requests`` requests and ``min_duration``
has passed since its routing config was written. Then every guard is judged: any breach rolls
back; otherwise the rollout advances to the next stage, or after the last stage promotes (or
waits for an approval when the spec requires one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from mlp_orchestration.rollout.guards import GuardResult, evaluate_guards
from mlp_orchestration.rollout.state import next_stage
from mlp_orchestration.rollout.windows import ArmWindow
from mlp_orchestration.spec import RolloutSpec


class Action(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    AWAIT_APPROVAL = "await_approval"


@dataclass(frozen=True)
class StageDecision:
    """What to do with the current canary stage, and the evidence for it."""

    action: Action
    share: float
    next_share: float | None
    reason: str
    canary_requests: int
    champion_requests: int
    elapsed_s: float
    guards: list[GuardResult] = field(default_factory=list)

    @property
    def breaches(self) -> list[GuardResult]:
        return [result for result in self.guards if result.breached]

    def evidence(self) -> dict[str, Any]:
        """The decision as plain JSON for the routing history and the rollout events."""
        return {
            "action": self.action.value,
            "share": self.share,
            "next_share": self.next_share,
            "reason": self.reason,
            "canary_requests": self.canary_requests,
            "champion_requests": self.champion_requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "guards": {result.name: result.as_dict() for result in self.guards},
            "breaches": [
                {
                    "metric": b.name,
                    "value": b.as_dict()["value"],
                    "limit": b.limit,
                    "comparison": b.comparison,
                    "message": b.message,
                }
                for b in self.breaches
            ],
        }


def decide_stage(
    *,
    canary: ArmWindow,
    champion: ArmWindow,
    share: float,
    rollout: RolloutSpec,
    elapsed: timedelta,
    approved: bool,
) -> StageDecision:
    """Decide the current stage from its canary and champion windows.

    Args:
        canary: the canary arm's requests in the stage's routing version.
        champion: the champion arm's requests in the same window (the reference).
        share: the stage's canary share.
        rollout: the spec's rollout plan and guard limits.
        elapsed: time since the stage's routing config was written.
        approved: whether the promotion of this rollout has been approved.
    """
    following = next_stage(rollout.stages, share)
    base = {
        "share": share,
        "next_share": following,
        "canary_requests": canary.requests,
        "champion_requests": champion.requests,
        "elapsed_s": elapsed.total_seconds(),
    }
    waiting = []
    if canary.requests < rollout.min_requests:
        waiting.append(f"{canary.requests} of {rollout.min_requests} canary requests")
    if elapsed < rollout.min_duration:
        waiting.append(
            f"{elapsed.total_seconds():.0f}s of {rollout.min_duration.total_seconds():.0f}s"
        )
    if waiting:
        return StageDecision(Action.HOLD, reason="holding: " + ", ".join(waiting), **base)

    results = evaluate_guards(canary, champion, rollout.guards)
    breaches = [result for result in results if result.breached]
    if breaches:
        reason = "rollback: " + "; ".join(result.message for result in breaches)
        return StageDecision(Action.ROLLBACK, reason=reason, guards=results, **base)
    healthy = f"stage {share:.0%} healthy over {canary.requests} canary requests"
    if following is not None:
        return StageDecision(
            Action.ADVANCE,
            reason=f"{healthy}; advancing to {following:.0%}",
            guards=results,
            **base,
        )
    if rollout.requires_approval and not approved:
        return StageDecision(
            Action.AWAIT_APPROVAL,
            reason=f"{healthy}; promotion waits for an approval (mlp routing approve)",
            guards=results,
            **base,
        )
    return StageDecision(
        Action.PROMOTE, reason=f"{healthy}; promoting the canary", guards=results, **base
    )
