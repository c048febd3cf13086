"""The rollout sensor and the shadow_evaluation asset on a real Dagster instance."""

from __future__ import annotations

import dagster as dg

from assets.shadow import SHADOW_GATE_CHECK, build_shadow_assets
from mlp_orchestration import keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.rollout.transitions import start_rollout
from mlp_orchestration.routing.config import RoutingStage
from sensors.rollout import build_rollout_sensors

from .helpers import close_scores, insert_shadow_pairs


def evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources={"mlp": MlpResource()})
    return sensor(context)


def test_definitions_load_with_shadow_asset_and_rollout_sensor(env):
    defs = dg.Definitions(
        assets=build_shadow_assets(env.spec),
        sensors=build_rollout_sensors(env.spec),
        resources={keys.RESOURCE_KEY: MlpResource()},
    )
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def(keys.sensor_name(env.spec.name, keys.ROLLOUT))
    assert sensor.minimum_interval_seconds == 5
    assert (
        keys.asset_key(env.spec.name, keys.SHADOW_EVALUATION)
        in repository.asset_graph.get_all_asset_keys()
    )


def test_sensor_requests_shadow_run_then_starts_canary(env):
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_rollout_sensors(env.spec)[0]
    shadow_key = keys.asset_key(env.spec.name, keys.SHADOW_EVALUATION)
    config = start_rollout(env.ctx, candidate_version=env.challenger, actor="alice")

    waiting = evaluate(sensor, instance)
    assert waiting.run_requests == []
    assert "0 of 2000 shadow requests" in waiting.skip_reason.skip_message

    champion, challenger = close_scores(env.spec.shadow.min_requests, seed=3)
    insert_shadow_pairs(
        env.ctx.engine,
        env.spec.name,
        routing_version=config.version,
        champion_version=env.champion,
        challenger_version=env.challenger,
        champion_scores=champion,
        challenger_scores=challenger,
    )
    first = evaluate(sensor, instance)
    again = evaluate(sensor, instance)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].asset_selection == [shadow_key]
    assert again.run_requests[0].run_key == first.run_requests[0].run_key

    result = dg.materialize(
        build_shadow_assets(env.spec),
        instance=instance,
        resources={keys.RESOURCE_KEY: MlpResource()},
    )
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == [SHADOW_GATE_CHECK]
    assert checks[0].passed
    materialization = result.asset_materializations_for_node(shadow_key.to_python_identifier())[0]
    assert materialization.metadata["verdict"].value == "passed"
    assert materialization.metadata["report"].value.endswith(".html")

    advanced = evaluate(sensor, instance)
    assert advanced.run_requests == []
    assert advanced.skip_reason.skip_message.startswith("advanced")
    current = env.ctx.store.current(env.spec.name)
    assert current.stage == RoutingStage.CANARY
    assert current.canary_share == env.spec.rollout.stages[0]
    assert current.actor == f"dagster:{keys.sensor_name(env.spec.name, keys.ROLLOUT)}"
