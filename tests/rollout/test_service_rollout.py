"""Rollout against a real ``mlp serve``: stickiness, rollback visibility, the driver end to end."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import pytest

from assets.shadow import SHADOW_GATE_CHECK, build_shadow_assets
from mlp_orchestration import keys, registry
from mlp_orchestration.cli import main
from mlp_orchestration.rollout.driver import drive_rollout, required_transactions
from mlp_orchestration.routing.config import RoutingStage
from mlp_orchestration.serving.canary import canary_salt, choose_arm
from mlp_orchestration.serving.client import ScoringClient

from .service import ROUTING_POLL_S, ScoringProcess, load_transactions

ENTITIES = [str(i) for i in range(500)]


@pytest.fixture
def service(rollout_env, tmp_path):
    process = ScoringProcess(rollout_env.settings, tmp_path / "serve.log").start()
    yield process
    process.stop()


def features(env, index: int) -> dict[str, float]:
    row = env.models.frame.iloc[index]
    return {name: float(row[name]) for name in env.spec.feature_names}


def score_all(env, client: ScoringClient, entities: list[str]) -> list[dict]:
    records = [{"entity_id": e, "features": features(env, i)} for i, e in enumerate(entities)]
    return client.score_batch(env.spec.name, records)


def wait_for_routing(env, client: ScoringClient, version: int, timeout_s: float = 30.0) -> float:
    """Score until responses carry routing ``version``; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        result = client.score(env.spec.name, "probe", features(env, 0))
        if result["routing_version"] == version:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"routing v{version} not served within {timeout_s}s")


def test_canary_stickiness_across_stages(rollout_env, service):
    env = rollout_env
    store = env.ctx.store
    first = store.update(
        env.spec.name,
        expected_version=1,
        stage=RoutingStage.CANARY,
        actor="alice",
        reason="canary 5%",
        canary_version=env.challenger,
        canary_share=0.05,
    )
    with ScoringClient(service.url) as client:
        wait_for_routing(env, client, first.version)
        at_5 = {r["entity_id"]: r for r in score_all(env, client, ENTITIES)}
        second = store.update(
            env.spec.name,
            expected_version=first.version,
            stage=RoutingStage.CANARY,
            actor="alice",
            reason="canary 25%",
            canary_share=0.25,
        )
        wait_for_routing(env, client, second.version)
        at_25 = {r["entity_id"]: r for r in score_all(env, client, ENTITIES)}

    salt = canary_salt(env.spec.name, env.challenger)
    canary_at_5 = {e for e, r in at_5.items() if r["arm"] == "canary"}
    canary_at_25 = {e for e, r in at_25.items() if r["arm"] == "canary"}
    assert canary_at_5 == {e for e in ENTITIES if choose_arm(e, salt=salt, share=0.05) == "canary"}
    assert canary_at_5
    assert canary_at_5 <= canary_at_25
    assert len(canary_at_25) > len(canary_at_5)
    assert all(at_25[e]["model_version"] == env.challenger for e in canary_at_25)


def test_rollback_visible_in_responses_within_polling_interval(rollout_env, service, capsys):
    env = rollout_env
    canary = env.ctx.store.update(
        env.spec.name,
        expected_version=1,
        stage=RoutingStage.CANARY,
        actor="alice",
        reason="full canary",
        canary_version=env.challenger,
        canary_share=1.0,
    )
    with ScoringClient(service.url) as client:
        wait_for_routing(env, client, canary.version)
        assert client.score(env.spec.name, "x", features(env, 1))["model_version"] == (
            env.challenger
        )

        code = main(
            [
                "routing",
                "rollback",
                env.spec.name,
                "--to",
                "1",
                "--by",
                "bob",
                "--reason",
                "canary looked wrong",
                "--expected-version",
                str(canary.version),
            ]
        )
        assert code == 0
        delay = wait_for_routing(env, client, canary.version + 1)
        after = client.score(env.spec.name, "x", features(env, 1))

    assert after["model_version"] == env.champion
    assert after["arm"] == "champion"
    # One polling interval plus the time one poll and one request take on a loaded machine.
    assert delay <= ROUTING_POLL_S + 1.5, delay
    assert "equal in traffic to v1" in capsys.readouterr().out
    assert registry.alias_version(env.client, env.spec.name, registry.CHAMPION) == env.champion


def small_plan(spec):
    """The fraud spec with stages small enough to walk in seconds on a test's replay."""
    shadow = spec.shadow.model_copy(update={"min_requests": 300})
    # The test and the service share two busy cores with the rest of the suite, where a few
    # requests in a stage can pause for 20 ms or more. The latency guard's breach path has its
    # own tests, so here only a canary p99 above 250 ms counts.
    guards = spec.rollout.guards.model_copy(update={"min_p99_latency_ms": 250.0})
    rollout = spec.rollout.model_copy(
        update={
            "stages": [0.25, 0.5, 1.0],
            "min_requests": 200,
            "min_duration": timedelta(seconds=1),
            "guards": guards,
        }
    )
    return spec.model_copy(update={"shadow": shadow, "rollout": rollout})


def test_driver_walks_shadow_and_canary_to_promotion(rollout_env, service, tmp_path):
    env = rollout_env
    spec = small_plan(env.spec)
    needed = required_transactions(
        spec, rate=300, routing_poll_s=env.settings.routing_poll_s, poll_s=0.3
    )
    frame = env.models.frame.iloc[15_000 : 15_000 + needed]
    load_transactions(env.settings, frame)
    instance = dg.DagsterInstance.ephemeral()

    outcome = drive_rollout(
        env.settings,
        spec,
        candidate_version=env.challenger,
        scoring_url=service.url,
        replay_start=frame["event_time"].iloc[0].to_pydatetime(),
        replay_end=frame["event_time"].iloc[-1].to_pydatetime() + timedelta(seconds=1),
        rate=300,
        label_delay_s=1.0,
        actor="alice",
        instance=instance,
        shadow_assets=build_shadow_assets(spec),
        poll_s=0.3,
        progress=False,
    )

    assert outcome.status == "promoted", outcome.message
    assert outcome.champion_version == env.challenger
    history = env.ctx.store.history(spec.name)
    stages = [(c.stage, c.canary_share) for c in history if c.version in outcome.routing_versions]
    assert stages == [
        (RoutingStage.SHADOW, 0.0),
        (RoutingStage.CANARY, 0.25),
        (RoutingStage.CANARY, 0.5),
        (RoutingStage.CANARY, 1.0),
        (RoutingStage.PROMOTED, 0.0),
    ]
    assert history[-1].evidence["shadow"]["report_path"] == outcome.shadow["report_path"]
    assert outcome.replay.failed == 0
    materialization = instance.get_latest_materialization_event(
        keys.asset_key(spec.name, keys.SHADOW_EVALUATION)
    )
    assert materialization is not None
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(keys.asset_key(spec.name, keys.SHADOW_EVALUATION), SHADOW_GATE_CHECK)]
    )
    assert list(check.values())[0].status.value == "SUCCEEDED"

    code = main(["routing", "history", spec.name, "--json"])
    assert code == 0
