"""Stage decisions and guard metrics on known scores, without any store."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from mlp_orchestration.rollout.decision import Action, decide_stage
from mlp_orchestration.rollout.guards import GUARDS, guard
from mlp_orchestration.rollout.windows import ArmWindow
from mlp_orchestration.spec import ModelSpec, RolloutSpec

from .helpers import BREACH_CASES, CHAMPION_PLAN, HEALTHY_CANARY, ArmPlan, plan_scores

THRESHOLD = 0.3


def window(plan: ArmPlan, *, arm: str, seed: int, with_labels: bool = True) -> ArmWindow:
    rng = np.random.default_rng(seed)
    scores, labels = plan_scores(plan, THRESHOLD, rng)
    statuses = np.full(plan.requests, 200)
    statuses[: plan.errors] = 500
    scores = scores.copy()
    scores[: plan.errors] = np.nan
    latencies = np.full(plan.requests, plan.latency_ms)
    latencies[: plan.slow] = plan.slow_ms
    return ArmWindow(
        arm=arm,
        model_version="2" if arm == "canary" else "1",
        routing_versions=(3,),
        decision_threshold=THRESHOLD,
        statuses=statuses,
        latencies_ms=latencies,
        scores=scores,
        labels=labels.astype(float) if with_labels else np.full(plan.requests, np.nan),
    )


def rollout_of(spec: ModelSpec, **guard_overrides: float) -> RolloutSpec:
    guards = spec.rollout.guards.model_copy(update=guard_overrides)
    return spec.rollout.model_copy(update={"guards": guards})


def decide(
    spec: RolloutSpec,
    canary: ArmWindow,
    *,
    share: float = 0.05,
    elapsed_s: float = 60.0,
    approved: bool = False,
):
    champion = window(CHAMPION_PLAN, arm="champion", seed=1)
    return decide_stage(
        canary=canary,
        champion=champion,
        share=share,
        rollout=spec,
        elapsed=timedelta(seconds=elapsed_s),
        approved=approved,
    )


def test_guard_registry_lists_every_metric():
    assert list(GUARDS) == [
        "error_rate",
        "p99_latency",
        "alert_rate",
        "score_psi",
        "precision",
        "recall",
    ]


def test_guard_registration_rejects_duplicate_name():
    with pytest.raises(ValueError, match="'recall' is already registered"):
        guard("recall")(lambda canary, champion, limits: None)


def test_healthy_canary_advances(fraud_spec):
    decision = decide(fraud_spec.rollout, window(HEALTHY_CANARY, arm="canary", seed=2))
    assert decision.action == Action.ADVANCE
    assert decision.next_share == 0.25
    assert decision.breaches == []
    assert all(result.judged for result in decision.guards)


@pytest.mark.parametrize("name", list(BREACH_CASES))
def test_guard_breach_rolls_back(fraud_spec, name):
    case = BREACH_CASES[name]
    rollout = rollout_of(fraud_spec, **(case.guard_overrides or {}))
    canary = window(case.canary, arm="canary", seed=2, with_labels=case.with_labels)
    decision = decide(rollout, canary)
    assert decision.action == Action.ROLLBACK
    assert [result.name for result in decision.breaches] == [name]
    breach = decision.evidence()["breaches"][0]
    assert breach["metric"] == name
    assert breach["value"] is not None
    assert breach["limit"] == getattr(
        rollout.guards,
        {
            "error_rate": "max_error_rate_increase",
            "p99_latency": "max_p99_latency_ratio",
            "alert_rate": "max_alert_rate_ratio",
            "score_psi": "max_score_psi",
            "precision": "min_precision_ratio",
            "recall": "min_recall_ratio",
        }[name],
    )


def test_stage_holds_until_min_requests(fraud_spec):
    few = ArmPlan(requests=fraud_spec.rollout.min_requests - 1, positives=5, flagged_positives=4)
    decision = decide(fraud_spec.rollout, window(few, arm="canary", seed=2))
    assert decision.action == Action.HOLD
    assert f"399 of {fraud_spec.rollout.min_requests} canary requests" in decision.reason


def test_stage_holds_until_min_duration(fraud_spec):
    decision = decide(
        fraud_spec.rollout, window(HEALTHY_CANARY, arm="canary", seed=2), elapsed_s=1.0
    )
    assert decision.action == Action.HOLD
    assert "1s of 5s" in decision.reason


def test_stage_holds_even_when_breached_before_minimum(fraud_spec):
    broken = ArmPlan(requests=100, errors=100)
    decision = decide(fraud_spec.rollout, window(broken, arm="canary", seed=2))
    assert decision.action == Action.HOLD


def test_last_stage_promotes(fraud_spec):
    decision = decide(fraud_spec.rollout, window(HEALTHY_CANARY, arm="canary", seed=2), share=1.0)
    assert decision.action == Action.PROMOTE
    assert decision.next_share is None


def test_last_stage_waits_for_approval(fraud_spec):
    rollout = fraud_spec.rollout.model_copy(update={"requires_approval": True})
    canary = window(HEALTHY_CANARY, arm="canary", seed=2)
    waiting = decide(rollout, canary, share=1.0)
    approved = decide(rollout, canary, share=1.0, approved=True)
    assert waiting.action == Action.AWAIT_APPROVAL
    assert approved.action == Action.PROMOTE


def test_precision_and_recall_not_judged_without_labels(fraud_spec):
    canary = window(HEALTHY_CANARY, arm="canary", seed=2, with_labels=False)
    results = {r.name: r for r in decide(fraud_spec.rollout, canary).guards}
    assert results["precision"].judged is False
    assert results["recall"].judged is False
    assert "labelled positives" in results["recall"].message


def test_latency_below_floor_is_healthy(fraud_spec):
    slow_but_fast = ArmPlan(
        requests=450, positives=10, flagged_positives=8, flagged_negatives=4, slow=10, slow_ms=3.0
    )
    results = {
        r.name: r
        for r in decide(fraud_spec.rollout, window(slow_but_fast, arm="canary", seed=2)).guards
    }
    assert results["p99_latency"].value > fraud_spec.rollout.guards.max_p99_latency_ratio
    assert results["p99_latency"].breached is False


def test_alert_rate_noise_within_chance_is_healthy(fraud_spec):
    # 3.1% of 450 against a champion at 1.8%: a ratio of 1.7, well within chance.
    noisy = ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=6)
    results = {
        r.name: r for r in decide(fraud_spec.rollout, window(noisy, arm="canary", seed=2)).guards
    }
    assert results["alert_rate"].breached is False
    assert results["alert_rate"].details["p_value"] > 0.01


@pytest.mark.parametrize("name", ["p99_latency", "score_psi"])
def test_distribution_guards_need_samples(fraud_spec, name):
    small = window(ArmPlan(requests=60, slow=10, low_score_scale=0.01), arm="canary", seed=2)
    champion = window(CHAMPION_PLAN, arm="champion", seed=1)
    result = GUARDS[name](small, champion, fraud_spec.rollout.guards)
    assert result.judged is False
    assert result.breached is False
    assert "need 100" in result.message
