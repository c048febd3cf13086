"""Retraining on sustained drift, on a schedule, and the drift reports' own schedule."""

from typing import TYPE_CHECKING

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.alerts import AlertLogError
from mlp_orchestration.monitoring.drift_reports import (
    evaluate_retrain,
    retrain_requested_alert,
    retrain_run_config,
    retrain_run_tags,
)
from mlp_orchestration.monitoring.retrain_policy import RETRAIN
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.spec import ModelSpec

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DEFAULT_INTERVAL_S = 60


def build_drift_job(spec: ModelSpec) -> "UnresolvedAssetJobDefinition":
    """Return the job that materializes one drift_report partition, in process."""
    return dg.define_asset_job(
        name=keys.job_name(spec.name, keys.DRIFT),
        selection=dg.AssetSelection.assets(keys.asset_key(spec.name, keys.DRIFT_REPORT)),
        executor_def=dg.in_process_executor,
        description=f"Compute the drift report of one {spec.name} prediction-log window.",
        tags={"mlp/model": spec.name},
    )


def build_retrain_on_drift_sensor(
    spec: ModelSpec,
    *,
    job: "dg.JobDefinition | UnresolvedAssetJobDefinition | None" = None,
    minimum_interval_seconds: int = DEFAULT_INTERVAL_S,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """Return the sensor that requests one retrain run per report that completes a drift streak.

    Without ``job`` it targets the job named ``keys.job_name(model, keys.RETRAIN)``.
    """
    job_name = job.name if job is not None else keys.job_name(spec.name, keys.RETRAIN)
    target = {"job": job} if job is not None else {"job_name": job_name}

    @dg.sensor(
        name=keys.sensor_name(spec.name, keys.RETRAIN_ON_DRIFT),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Retrain {spec.name} when drift lasts "
        f"{spec.monitoring.retrain.consecutive_windows} back-to-back windows, at most once per "
        f"{spec.monitoring.retrain.cooldown}.",
        **target,
    )
    def retrain_on_drift_sensor(
        context: dg.SensorEvaluationContext, mlp: MlpResource
    ) -> dg.SensorResult:
        decision = evaluate_retrain(
            context.instance, spec, cursor=context.cursor, job_name=job_name
        )
        cursor = decision.cursor.to_json()
        if decision.decision != RETRAIN or decision.triggering is None:
            return dg.SensorResult(skip_reason=decision.reason, cursor=cursor)
        context.log.info("requesting a retrain of %s: %s", spec.name, decision.reason)
        try:
            mlp.alerts().send(
                retrain_requested_alert(spec, decision.triggering, run_key=decision.run_key)
            )
        except AlertLogError as exc:
            # An unwritable alert log must not hold back the retrain; the tick log keeps it.
            context.log.warning("the drift alert for %s was not sent: %s", spec.name, exc)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=decision.run_key,
                    run_config=retrain_run_config(spec, decision),
                    tags=retrain_run_tags(decision),
                )
            ],
            cursor=cursor,
        )

    return retrain_on_drift_sensor


def build_retrain_sensors(
    spec: ModelSpec,
    retrain_job: "dg.JobDefinition | UnresolvedAssetJobDefinition | None" = None,
) -> list[dg.SensorDefinition | dg.ScheduleDefinition]:
    """Return the retrain-on-drift sensor, the drift schedule and the periodic retrain schedule.

    All three start stopped; turn them on in the Dagster UI. The drift schedule targets the job
    from ``build_drift_job``, which Dagster adds to the code location along with the schedule.
    """
    retrain_target = (
        {"job": retrain_job}
        if retrain_job is not None
        else {"job_name": keys.job_name(spec.name, keys.RETRAIN)}
    )
    drift_schedule = dg.build_schedule_from_partitioned_job(
        build_drift_job(spec),
        name=keys.schedule_name(spec.name, keys.DRIFT),
        description=f"Compute each {spec.name} drift window once it has closed.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    retrain_schedule = dg.ScheduleDefinition(
        name=keys.schedule_name(spec.name, keys.RETRAIN),
        cron_schedule=spec.monitoring.retrain.schedule,
        execution_timezone="UTC",
        description=f"Retrain {spec.name} on a fixed cadence, drift or not.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={"mlp/trigger": "schedule"},
        **retrain_target,
    )
    return [build_retrain_on_drift_sensor(spec, job=retrain_job), drift_schedule, retrain_schedule]
