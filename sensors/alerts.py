"""Sensors that turn Dagster run events into alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from mlp_orchestration.alerts import SendStatus, dagster_run_url, run_failure_alert
from mlp_orchestration.errors import ErrorCategory, MlpError
from mlp_orchestration.resources import MlpResource

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

RUN_FAILURE_ALERT_SENSOR = "run_failure_alert_sensor"


class AlertDeliveryError(MlpError):
    """An alert could not be delivered, so the sensor tick shows an error."""

    category = ErrorCategory.UNAVAILABLE


def build_alert_sensors() -> list[dg.SensorDefinition]:
    """Return the alert sensors of the code location: one run-failure sensor for all its jobs."""

    @dg.run_failure_sensor(
        name=RUN_FAILURE_ALERT_SENSOR,
        description="Sends a RUN_FAILED alert for every failed run of this code location's jobs.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, mlp: MlpResource) -> None:
        run = context.dagster_run
        failed_steps = {
            event.step_key or "run": _root_cause(event.step_failure_data.error)
            for event in context.get_step_failure_events()
        }
        alert = run_failure_alert(
            run.job_name,
            run_id=run.run_id,
            error=context.failure_event.message or "the run failed",
            run_url=dagster_run_url(mlp.settings(), run.run_id),
            failed_steps=failed_steps,
            partition=run.tags.get("dagster/partition"),
        )
        result = mlp.alerts().send(alert)
        if result.status is SendStatus.FAILED:
            raise AlertDeliveryError(
                f"the failure alert for run {run.run_id} of {run.job_name} was not delivered: "
                f"{result.error} (alert_log id {result.log_id})"
            )

    return [run_failure_alert_sensor]


def _root_cause(error: SerializableErrorInfo | None) -> str:
    # Dagster wraps an op's exception in DagsterExecutionStepExecutionError, so the user's
    # exception is at the end of the cause chain.
    if error is None:
        return "no error recorded"
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
