"""The rollout sensor: advances, rolls back or promotes a challenger on a short interval.

It applies canary decisions itself rather than requesting a run per decision. A decision is one
compare-and-set write of the routing config plus an event row, done in well under a second, and
a rollback must take effect at once; a run launch adds seconds to minutes (a new process or pod)
before the breach is acted on. Every decision is still recorded with its evidence in the routing
history and the rollout_events table, and the tick log shows it. The shadow evaluation is heavier
and produces a report, so the sensor requests a run of the shadow_evaluation asset for it.
"""

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.controller import StepAction, step_rollout
from mlp_orchestration.rollout.notify import send_rollout_alert
from mlp_orchestration.spec import ModelSpec

DEFAULT_INTERVAL_S = 5


def build_rollout_sensors(
    spec: ModelSpec,
    *,
    minimum_interval_seconds: int = DEFAULT_INTERVAL_S,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> list[dg.SensorDefinition]:
    """Return the model's rollout sensor, which targets its shadow_evaluation asset."""
    shadow_key = keys.asset_key(spec.name, keys.SHADOW_EVALUATION)
    name = keys.sensor_name(spec.name, keys.ROLLOUT)

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        target=[shadow_key],
        description=f"Walk {spec.name}'s challenger through shadow, the canary stages "
        f"{spec.rollout.stages} and promotion; roll back on any guard breach.",
    )
    def rollout_sensor(context: dg.SensorEvaluationContext, mlp: MlpResource) -> dg.SensorResult:
        ctx = RolloutContext.create(mlp.settings(), spec)
        outcome = step_rollout(ctx, actor=f"dagster:{name}", auto_start=spec.rollout.auto_start)
        context.log.info(f"{spec.name} rollout: {outcome.action.value}: {outcome.message}")
        send_rollout_alert(ctx, outcome)
        if outcome.action == StepAction.EVALUATE_SHADOW:
            run_key = f"{spec.name}-shadow-{outcome.evaluation_key}"
            return dg.SensorResult(
                run_requests=[
                    dg.RunRequest(
                        run_key=run_key, asset_selection=[shadow_key], tags={"mlp/model": spec.name}
                    )
                ]
            )
        return dg.SensorResult(skip_reason=f"{outcome.action.value}: {outcome.message}")

    return [rollout_sensor]
