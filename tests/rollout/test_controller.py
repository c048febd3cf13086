"""Rollout steps against real stores: SQLite warehouse, routing store and MLflow registry."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest

from mlp_orchestration import registry
from mlp_orchestration.errors import ApprovalError, ConfigurationError, RoutingConflictError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.approval import approve_rollout
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.controller import StepAction, step_rollout
from mlp_orchestration.rollout.manual import rollback_routing
from mlp_orchestration.rollout.shadow_run import run_shadow_evaluation
from mlp_orchestration.rollout.transitions import start_rollout
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage
from mlp_orchestration.warehouse import rollout_events

from .conftest import THRESHOLD
from .helpers import (
    BREACH_CASES,
    CHAMPION_PLAN,
    HEALTHY_CANARY,
    ArmPlan,
    close_scores,
    count_rows,
    insert_arm,
    insert_shadow_pairs,
)

# A loopback port with nothing listening: a registry that refuses every connection.
DOWN_REGISTRY = "http://127.0.0.1:9"


def later(config: RoutingConfig, ctx: RolloutContext):
    return config.created_at + ctx.spec.rollout.min_duration + timedelta(seconds=1)


def pass_shadow(env, *, actor: str = "alice", noise: float = 0.05) -> RoutingConfig:
    """Start the rollout, log agreeing shadow pairs, evaluate them; return the shadow config."""
    config = start_rollout(env.ctx, candidate_version=env.challenger, actor=actor)
    champion, challenger = close_scores(env.spec.shadow.min_requests, seed=5, noise=noise)
    insert_shadow_pairs(
        env.ctx.engine,
        env.spec.name,
        routing_version=config.version,
        champion_version=env.champion,
        challenger_version=env.challenger,
        champion_scores=champion,
        challenger_scores=challenger,
    )
    return config


def fill_stage(
    env,
    config: RoutingConfig,
    canary: ArmPlan = HEALTHY_CANARY,
    *,
    seed: int = 0,
    with_labels: bool = True,
) -> None:
    insert_arm(
        env.ctx.engine,
        env.spec.name,
        arm="canary",
        routing_version=config.version,
        model_version=env.challenger,
        plan=canary,
        threshold=THRESHOLD,
        seed=seed,
        with_labels=with_labels,
    )
    if config.canary_share < 1.0:
        insert_arm(
            env.ctx.engine,
            env.spec.name,
            arm="champion",
            routing_version=config.version,
            model_version=env.champion,
            plan=CHAMPION_PLAN,
            threshold=THRESHOLD,
            seed=seed + 100,
        )


def to_first_canary(env, *, actor: str = "alice") -> RoutingConfig:
    pass_shadow(env, actor=actor)
    hold = step_rollout(env.ctx, actor="sensor")
    assert hold.action == StepAction.EVALUATE_SHADOW
    evaluation = run_shadow_evaluation(env.ctx, actor="sensor")
    assert evaluation.gate.verdict == "passed", [c.message for c in evaluation.gate.failures]
    advanced = step_rollout(env.ctx, actor="sensor")
    assert advanced.action == StepAction.ADVANCED
    return advanced.written


def test_healthy_canary_advances_through_every_stage_and_promotes(env):
    config = to_first_canary(env)
    shares = [config.canary_share]
    for seed in range(len(env.spec.rollout.stages)):
        fill_stage(env, config, seed=seed)
        outcome = step_rollout(env.ctx, actor="sensor", now=later(config, env.ctx))
        assert outcome.action in (StepAction.ADVANCED, StepAction.PROMOTED), outcome.message
        config = outcome.written
        shares.append(config.canary_share)

    assert shares[:-1] == env.spec.rollout.stages
    history = env.ctx.store.history(env.spec.name)
    assert [c.stage for c in history] == [
        RoutingStage.INITIAL,
        RoutingStage.SHADOW,
        *[RoutingStage.CANARY] * 4,
        RoutingStage.PROMOTED,
    ]
    promoted = history[-1]
    assert promoted.champion_version == env.challenger
    assert promoted.canary_version is None
    assert promoted.evidence["gate_report"]["gate_verdict"] == "passed"
    assert promoted.evidence["shadow"]["requests"] == env.spec.shadow.min_requests
    assert [s["decision"] for s in promoted.evidence["stages"]] == [
        "started",
        "shadow_passed",
        "advanced",
        "advanced",
        "advanced",
        "advanced",
    ]
    assert promoted.evidence["final_stage"]["share"] == 1.0
    assert registry.alias_version(env.client, env.spec.name, registry.CHAMPION) == env.challenger
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) is None
    assert all(c.actor and c.reason and c.evidence for c in history[1:])


def test_stage_holds_before_min_duration(env):
    config = to_first_canary(env)
    fill_stage(env, config)
    outcome = step_rollout(env.ctx, actor="sensor", now=config.created_at + timedelta(seconds=1))
    assert outcome.action == StepAction.HOLD
    assert env.ctx.store.current(env.spec.name).version == config.version


@pytest.mark.parametrize("guard", list(BREACH_CASES))
def test_guard_breach_rolls_back_with_evidence(env, guard):
    case = BREACH_CASES[guard]
    if case.guard_overrides:
        guards = env.spec.rollout.guards.model_copy(update=case.guard_overrides)
        env.ctx.spec = env.spec.model_copy(
            update={"rollout": env.spec.rollout.model_copy(update={"guards": guards})}
        )
    config = to_first_canary(env)
    fill_stage(env, config, case.canary, with_labels=case.with_labels)

    outcome = step_rollout(env.ctx, actor="sensor", now=later(config, env.ctx))

    assert outcome.action == StepAction.ROLLED_BACK
    rolled = env.ctx.store.current(env.spec.name)
    assert rolled.stage == RoutingStage.ROLLED_BACK
    assert rolled.canary_version is None
    assert rolled.canary_share == 0.0
    assert rolled.champion_version == env.champion
    assert rolled.actor == "sensor"
    breach = rolled.evidence["breaches"][0]
    assert breach["metric"] == guard
    assert breach["value"] == pytest.approx(rolled.evidence["guards"][guard]["value"])
    assert breach["limit"] == rolled.evidence["guards"][guard]["limit"]
    assert guard in rolled.reason
    recorded = events.list_events(env.ctx.engine, env.spec.name, decision=events.ROLLED_BACK)
    assert len(recorded) == 1
    assert recorded[0].breaches[0]["metric"] == guard
    assert recorded[0].routing_version == config.version
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) is None
    after = step_rollout(env.ctx, actor="sensor", auto_start=True)
    assert after.action == StepAction.IDLE


def test_shadow_gate_failure_rolls_back(env):
    config = start_rollout(env.ctx, candidate_version=env.challenger, actor="alice")
    rng = np.random.default_rng(11)
    champion = rng.beta(0.5, 30, env.spec.shadow.min_requests)
    insert_shadow_pairs(
        env.ctx.engine,
        env.spec.name,
        routing_version=config.version,
        champion_version=env.champion,
        challenger_version=env.challenger,
        champion_scores=champion,
        challenger_scores=rng.permutation(champion),
    )
    evaluation = run_shadow_evaluation(env.ctx, actor="sensor")
    assert evaluation.gate.verdict == "failed"
    assert evaluation.report_path.is_file()
    assert evaluation.report_path.parent == env.settings.reports_dir / env.spec.name / "shadow"

    outcome = step_rollout(env.ctx, actor="sensor")

    assert outcome.action == StepAction.ROLLED_BACK
    rolled = env.ctx.store.current(env.spec.name)
    assert rolled.shadow_versions == ()
    assert {b["metric"] for b in rolled.evidence["breaches"]} >= {"score_correlation"}
    assert "shadow gate failed" in rolled.reason


def test_shadow_holds_until_enough_pairs(env):
    config = start_rollout(env.ctx, candidate_version=env.challenger, actor="alice")
    champion, challenger = close_scores(50, seed=1)
    insert_shadow_pairs(
        env.ctx.engine,
        env.spec.name,
        routing_version=config.version,
        champion_version=env.champion,
        challenger_version=env.challenger,
        champion_scores=champion,
        challenger_scores=challenger,
    )
    outcome = step_rollout(env.ctx, actor="sensor")
    assert outcome.action == StepAction.HOLD
    assert f"50 of {env.spec.shadow.min_requests} shadow requests" in outcome.message


def walk_to_last_stage(env, *, actor: str) -> RoutingConfig:
    config = to_first_canary(env, actor=actor)
    for seed in range(len(env.spec.rollout.stages) - 1):
        fill_stage(env, config, seed=seed)
        config = step_rollout(env.ctx, actor="sensor", now=later(config, env.ctx)).written
    return config


def test_approval_required_and_same_person_rejected(env):
    env.ctx.spec = env.spec.model_copy(
        update={"rollout": env.spec.rollout.model_copy(update={"requires_approval": True})}
    )
    last = walk_to_last_stage(env, actor="alice")
    fill_stage(env, last)

    first = step_rollout(env.ctx, actor="sensor", now=later(last, env.ctx))
    second = step_rollout(env.ctx, actor="sensor", now=later(last, env.ctx))
    assert first.action == second.action == StepAction.AWAITING_APPROVAL
    assert count_rows(env.ctx.engine, rollout_events, decision=events.AWAITING_APPROVAL) == 1

    with pytest.raises(ApprovalError, match="approver 'Alice' started the rollout"):
        approve_rollout(env.settings, env.spec.name, approver=" Alice ")
    approval = approve_rollout(env.settings, env.spec.name, approver="bob", note="reviewed")
    assert approval.started_by == "alice"
    with pytest.raises(ApprovalError, match="already approved by bob"):
        approve_rollout(env.settings, env.spec.name, approver="carol")

    promoted = step_rollout(env.ctx, actor="sensor", now=later(last, env.ctx))
    assert promoted.action == StepAction.PROMOTED
    assert promoted.written.evidence["approval"]["approver"] == "bob"
    assert "approved by bob" in promoted.written.reason


def test_approval_without_rollout_rejected(env):
    with pytest.raises(ApprovalError, match="has no rollout in progress"):
        approve_rollout(env.settings, env.spec.name, approver="bob")


def test_auto_start_puts_challenger_in_shadow(env):
    outcome = step_rollout(env.ctx, actor="dagster:sensor", auto_start=True)
    assert outcome.action == StepAction.STARTED
    config = env.ctx.store.current(env.spec.name)
    assert config.stage == RoutingStage.SHADOW
    assert config.shadow_versions == (env.challenger,)
    assert config.actor == "dagster:sensor"
    assert config.evidence["gate_report"]["gate_verdict"] == "passed"
    assert "started_by_identity" not in config.evidence


def test_start_rejects_version_that_failed_gates(env):
    failed = env.register(
        "challenger", tags={"gate_verdict": "failed", "decision_threshold": "0.2"}
    )
    with pytest.raises(ConfigurationError, match=f"version {failed} has gate_verdict='failed'"):
        start_rollout(env.ctx, candidate_version=failed, actor="alice")


def test_start_rejects_second_candidate_during_rollout(env):
    start_rollout(env.ctx, candidate_version=env.challenger, actor="alice")
    other = env.register("challenger", tags={"gate_verdict": "passed", "decision_threshold": "0.2"})
    with pytest.raises(RoutingConflictError, match=f"is rolling out version {env.challenger}"):
        start_rollout(env.ctx, candidate_version=other, actor="alice")
    again = start_rollout(env.ctx, candidate_version=env.challenger, actor="bob")
    assert again.actor == "alice"


def test_concurrent_evaluators_apply_one_decision(env):
    config = to_first_canary(env)
    fill_stage(env, config)
    now = later(config, env.ctx)
    outcomes = []
    barrier = threading.Barrier(4)

    def evaluate(index: int) -> None:
        ctx = RolloutContext.create(env.settings, env.spec)
        barrier.wait()
        outcomes.append(step_rollout(ctx, actor=f"evaluator-{index}", now=now))

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    actions = sorted(outcome.action.value for outcome in outcomes)
    assert actions.count("advanced") == 1, actions
    assert set(actions) <= {"advanced", "superseded", "hold"}
    history = env.ctx.store.history(env.spec.name)
    assert history[-1].canary_share == env.spec.rollout.stages[1]
    assert len(history) == config.version + 1
    assert count_rows(env.ctx.engine, rollout_events, decision=events.ADVANCED) == 2


def registry_down_context(env) -> RolloutContext:
    """The rollout's context once the registry stopped responding after the tags were read."""
    thresholds = {v: env.ctx.decision_threshold(v) for v in (env.champion, env.challenger)}
    settings = env.settings.model_copy(update={"mlflow_tracking_uri": DOWN_REGISTRY})
    return RolloutContext(
        settings, env.ctx.spec, env.ctx.engine, env.ctx.store, _thresholds=thresholds
    )


def test_breach_rolls_back_while_registry_down(env):
    config = to_first_canary(env)
    fill_stage(env, config, BREACH_CASES["error_rate"].canary)

    outcome = step_rollout(registry_down_context(env), actor="sensor", now=later(config, env.ctx))

    assert outcome.action == StepAction.ROLLED_BACK
    assert "the challenger alias was left in place because the MLflow registry at " in (
        outcome.message
    )
    assert f"'mlp routing reconcile {env.spec.name}'" in outcome.message
    rolled = env.ctx.store.current(env.spec.name)
    assert rolled.stage == RoutingStage.ROLLED_BACK
    assert rolled.canary_version is None
    assert DOWN_REGISTRY in rolled.evidence["aliases_pending"]
    assert count_rows(env.ctx.engine, rollout_events, decision=events.ROLLED_BACK) == 1
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) == (
        env.challenger
    )

    idle = step_rollout(env.ctx, actor="sensor")
    assert idle.action == StepAction.IDLE
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) is None
    assert registry.alias_version(env.client, env.spec.name, registry.CHAMPION) == env.champion


def test_promotion_waits_while_registry_down(env):
    last = walk_to_last_stage(env, actor="alice")
    fill_stage(env, last)

    waiting = step_rollout(registry_down_context(env), actor="sensor", now=later(last, env.ctx))

    assert waiting.action == StepAction.HOLD
    assert "promotion waits for the registry" in waiting.message
    assert f"Nothing was changed: routing stays at v{last.version}" in waiting.message
    assert env.ctx.store.current(env.spec.name).version == last.version
    assert count_rows(env.ctx.engine, rollout_events, decision=events.PROMOTED) == 0
    assert registry.alias_version(env.client, env.spec.name, registry.CHAMPION) == env.champion

    promoted = step_rollout(env.ctx, actor="sensor", now=later(last, env.ctx))
    assert promoted.action == StepAction.PROMOTED
    assert registry.alias_version(env.client, env.spec.name, registry.CHAMPION) == env.challenger
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) is None


def test_idle_step_reports_registry_down(env):
    outcome = step_rollout(registry_down_context(env), actor="sensor", auto_start=True)
    assert outcome.action == StepAction.IDLE
    assert "aliases not checked: the MLflow registry at http://127.0.0.1:9" in outcome.message
    assert env.ctx.store.current(env.spec.name).version == 1


def test_manual_rollback_during_canary_rejects_candidate(env):
    config = to_first_canary(env)

    rolled = rollback_routing(
        env.settings,
        env.spec.name,
        to_version=1,
        expected_version=None,
        actor="carol",
        reason="canary looks wrong",
    )

    assert rolled.stage == RoutingStage.ROLLBACK
    assert rolled.canary_version is None
    assert rolled.evidence["candidate_version"] == env.challenger
    assert rolled.evidence["from_stage"] == f"canary_{round(config.canary_share * 100)}"
    assert registry.alias_version(env.client, env.spec.name, registry.CHALLENGER) is None
    recorded = events.list_events(env.ctx.engine, env.spec.name, decision=events.ROLLED_BACK)
    assert [(e.actor, e.routing_version) for e in recorded] == [("carol", config.version)]
    after = step_rollout(env.ctx, actor="sensor", auto_start=True)
    assert after.action == StepAction.IDLE


def test_approval_during_shadow_keeps_shadow_verdict(env):
    pass_shadow(env)
    assert step_rollout(env.ctx, actor="sensor").action == StepAction.EVALUATE_SHADOW
    evaluation = run_shadow_evaluation(env.ctx, actor="sensor")
    assert evaluation.gate.verdict == "passed"

    approve_rollout(env.settings, env.spec.name, approver="bob")
    advanced = step_rollout(env.ctx, actor="sensor")

    assert advanced.action == StepAction.ADVANCED
    assert count_rows(env.ctx.engine, rollout_events, decision=events.APPROVED) == 1
