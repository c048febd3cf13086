"""Drive one rollout end to end while replaying traffic: the demo's rollout step.

The driver writes the shadow config and replays a window of real transactions through the
scoring service in the background. It materializes ``shadow_evaluation`` (through Dagster when
given an instance, so the UI shows it), then runs the same ``step_rollout`` as the rollout sensor
until the candidate is promoted or rolled back. A rollout sensor running at the same time is safe:
whichever evaluator writes first wins the compare-and-set and the other follows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlp_orchestration import keys
from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.replay import ReplayReport, TrafficReplay
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.controller import (
    TERMINAL_ACTIONS,
    StepAction,
    StepOutcome,
    step_rollout,
)
from mlp_orchestration.rollout.notify import send_rollout_alert
from mlp_orchestration.rollout.shadow_run import run_shadow_evaluation
from mlp_orchestration.rollout.transitions import start_rollout
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec

if TYPE_CHECKING:
    import dagster as dg

logger = logging.getLogger(__name__)

# The canary share is a hash split, so a stage receives its share of traffic only on average; the
# window must hold this much more than the exact minimum.
_WINDOW_MARGIN = 1.15
# Seconds allowed for the shadow evaluation (a Dagster run in process) while traffic keeps
# flowing to the shadow stage; an estimate from test runs on a 2-core machine.
_SHADOW_EVALUATION_S = 10.0


@dataclass
class RolloutOutcome:
    """The end state of a driven rollout, with every routing version it wrote."""

    model: str
    candidate_version: str
    status: str  # promoted, rolled_back, awaiting_approval or incomplete
    champion_version: str
    message: str
    routing_versions: list[int] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None
    replay: ReplayReport | None = None

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["replay"] = self.replay.as_dict() if self.replay else None
        return result


def required_transactions(
    spec: ModelSpec, *, rate: float, routing_poll_s: float, poll_s: float
) -> int:
    """Estimate the transactions a replay window needs to walk the shadow and canary stages.

    Each stage needs its minimum requests, and also lasts at least ``min_duration`` plus the
    time for a routing change to reach the service and for the driver to see it; traffic sent
    meanwhile counts for no stage.
    """
    canary = sum(math.ceil(spec.rollout.min_requests / share) for share in spec.rollout.stages)
    per_stage_s = spec.rollout.min_duration.total_seconds() + routing_poll_s + poll_s
    waiting_s = len(spec.rollout.stages) * per_stage_s + _SHADOW_EVALUATION_S
    return math.ceil((spec.shadow.min_requests + canary) * _WINDOW_MARGIN + rate * waiting_s)


def _materialize_shadow(
    ctx: RolloutContext,
    instance: dg.DagsterInstance,
    shadow_assets: Sequence[dg.AssetsDefinition],
    actor: str,
) -> None:
    import dagster as dg

    from mlp_orchestration.instance import QUIET_LOGGERS
    from mlp_orchestration.resources import MlpResource

    result = dg.materialize(
        shadow_assets,
        instance=instance,
        resources={keys.RESOURCE_KEY: MlpResource()},
        tags={"mlp/model": ctx.model, "mlp/actor": actor},
        run_config=QUIET_LOGGERS,
        raise_on_error=True,
    )
    logger.info("shadow_evaluation of %s materialized in Dagster run %s", ctx.model, result.run_id)


def _check_instance_settings(settings: Settings) -> None:
    from mlp_orchestration.resources import MlpResource

    resource_url = MlpResource().settings().warehouse_url
    if resource_url != settings.warehouse_url:
        raise ConfigurationError(
            f"the Dagster resource reads the warehouse {resource_url} from the environment, but "
            f"the rollout was given {settings.warehouse_url}; set MLP_HOME or MLP_DATABASE_URL "
            "in the environment to the same store"
        )


def drive_rollout(
    settings: Settings,
    spec: ModelSpec,
    *,
    candidate_version: str,
    scoring_url: str,
    replay_start: datetime,
    replay_end: datetime,
    rate: float,
    label_delay_s: float,
    actor: str,
    instance: dg.DagsterInstance | None = None,
    shadow_assets: Sequence[dg.AssetsDefinition] | None = None,
    batch_size: int = 10,
    poll_s: float = 1.0,
    approval_timeout_s: float = 0.0,
    progress: bool = True,
) -> RolloutOutcome:
    """Roll ``candidate_version`` out through shadow and every canary stage on replayed traffic.

    Args:
        candidate_version: a registered version that passed its gates (the challenger).
        scoring_url: base URL of the running scoring service.
        replay_start: start of the event-time window of transactions to replay.
        replay_end: end (exclusive) of that window; it must hold ``required_transactions``.
        rate: replay rate in transactions per second.
        label_delay_s: seconds after sending at which each label arrives.
        actor: who started the rollout (recorded on every routing change the driver makes).
        instance: a Dagster instance; when given, shadow_evaluation is materialized in it.
        shadow_assets: the model's ``build_shadow_assets(spec)`` from ``assets.shadow``,
            needed with ``instance`` (the library does not import the assets package).
        batch_size: records per scoring request.
        poll_s: seconds between rollout evaluations.
        approval_timeout_s: how long to wait at the last stage for ``mlp routing approve``
            when the spec requires an approval.

    Raises:
        ConfigurationError: the window is too small, or the Dagster resource would read
            another warehouse than ``settings``.
        ReplayError: the scoring service kept failing.
    """
    ctx = RolloutContext.create(settings, spec)
    if instance is not None:
        if not shadow_assets:
            raise ConfigurationError(
                "drive_rollout was given a Dagster instance but no shadow_assets; pass "
                "assets.shadow.build_shadow_assets(spec)"
            )
        _check_instance_settings(settings)
    replay = TrafficReplay(
        settings,
        spec,
        start=replay_start,
        end=replay_end,
        rate=rate,
        label_delay_s=label_delay_s,
        scoring_url=scoring_url,
        batch_size=batch_size,
        progress=progress,
    )
    needed = required_transactions(
        spec, rate=rate, routing_poll_s=settings.routing_poll_s, poll_s=poll_s
    )
    if len(replay.window) < needed:
        raise ConfigurationError(
            f"the replay window {replay_start.isoformat()} to {replay_end.isoformat()} contains "
            f"{len(replay.window)} transactions, but the shadow stage and the canary stages "
            f"{spec.rollout.stages} need about {needed} at {rate:g} transactions/s; widen the "
            "window or lower the rate"
        )
    before = ctx.store.require_current(spec.name).version
    start_rollout(ctx, candidate_version=candidate_version, actor=actor)
    replay.start()
    steps: list[StepOutcome] = []
    try:
        final = _walk(
            ctx,
            replay,
            steps,
            instance=instance,
            shadow_assets=shadow_assets,
            actor=actor,
            poll_s=poll_s,
            approval_timeout_s=approval_timeout_s,
        )
    finally:
        replay.stop()
        report = replay.wait(flush_labels=True)
    return _outcome(ctx, candidate_version, final, steps, report, before)


def _walk(
    ctx: RolloutContext,
    replay: TrafficReplay,
    steps: list[StepOutcome],
    *,
    instance: dg.DagsterInstance | None,
    shadow_assets: Sequence[dg.AssetsDefinition] | None,
    actor: str,
    poll_s: float,
    approval_timeout_s: float,
) -> StepOutcome:
    # After sending ends, the service's prediction log writer still buffers the last rows for up
    # to its flush interval, and a stage needs min_duration; allow both before giving up.
    grace_s = ctx.spec.rollout.min_duration.total_seconds() + 2 * ctx.settings.predlog_flush_s + 5
    idle_since: float | None = None
    waiting_since: float | None = None
    while True:
        outcome = step_rollout(ctx, actor=actor)
        if outcome.action not in (StepAction.HOLD, StepAction.SUPERSEDED):
            steps.append(outcome)
            logger.info("rollout of %s: %s: %s", ctx.model, outcome.action.value, outcome.message)
        send_rollout_alert(ctx, outcome)
        if outcome.action in TERMINAL_ACTIONS or outcome.action == StepAction.IDLE:
            return outcome
        if outcome.action == StepAction.EVALUATE_SHADOW:
            if instance is not None and shadow_assets:
                _materialize_shadow(ctx, instance, shadow_assets, actor)
            else:
                run_shadow_evaluation(ctx, actor=actor)
            continue
        if outcome.action == StepAction.AWAITING_APPROVAL:
            waiting_since = waiting_since or time.monotonic()
            if time.monotonic() - waiting_since >= approval_timeout_s:
                return outcome
        if replay.sending_done and outcome.action == StepAction.HOLD:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= grace_s:
                return outcome
        time.sleep(poll_s)


def _status(action: StepAction) -> str:
    return {
        StepAction.PROMOTED: "promoted",
        StepAction.ROLLED_BACK: "rolled_back",
        StepAction.AWAITING_APPROVAL: "awaiting_approval",
    }.get(action, "incomplete")


def _outcome(
    ctx: RolloutContext,
    candidate: str,
    final: StepOutcome,
    steps: list[StepOutcome],
    report: ReplayReport,
    before: int,
) -> RolloutOutcome:
    history = ctx.store.history(ctx.model)
    latest = history[-1]
    shadow_events = events.list_events(
        ctx.engine,
        ctx.model,
        candidate_version=candidate,
        since_routing_version=before + 1,
        decision=events.SHADOW_PASSED,
    )
    failed_shadow = events.list_events(
        ctx.engine,
        ctx.model,
        candidate_version=candidate,
        since_routing_version=before + 1,
        decision=events.SHADOW_FAILED,
    )
    shadow_event = (shadow_events or failed_shadow or [None])[-1]
    message = final.message
    if _status(final.action) == "incomplete":
        message = (
            f"the replay window ran out at routing v{latest.version} "
            f"({latest.stage.value}): {final.message}; replay a later window or let the "
            "rollout sensor continue"
        )
    return RolloutOutcome(
        model=ctx.model,
        candidate_version=candidate,
        status=_status(final.action),
        champion_version=latest.champion_version,
        message=message,
        routing_versions=[config.version for config in history if config.version > before],
        steps=[
            {
                "action": s.action.value,
                "message": s.message,
                "routing_version": s.written.version if s.written else s.routing_version,
            }
            for s in steps
        ],
        breaches=list(latest.evidence.get("breaches") or [])
        if final.action == StepAction.ROLLED_BACK
        else [],
        shadow=None
        if shadow_event is None
        else {
            "decision": shadow_event.decision,
            "report_path": shadow_event.metrics.get("report_path"),
            "requests": (shadow_event.metrics.get("summary") or {}).get("requests"),
        },
        replay=report,
    )
