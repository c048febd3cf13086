"""A small code location for the daemon test: the real retrain sensor and a tiny retrain job.

The tiny job's one op carries the name and config of the real retrain job's snapshot step, so
the run config the sensor sends (the snapshot's cut-off) is checked by Dagster as in production.
"""

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.settings import PACKAGE_DIR
from mlp_orchestration.spec import load_spec_file
from sensors.retrain import build_retrain_on_drift_sensor

SPEC = load_spec_file(PACKAGE_DIR / "specs" / "fraud.yaml")


@dg.op(
    name="__".join(keys.asset_key(SPEC.name, keys.FEATURE_SNAPSHOT).path),
    config_schema={"as_of": dg.Field(str, is_required=False)},
)
def record_retrain_request(context: dg.OpExecutionContext) -> None:
    context.log.info(
        "retrain requested by %s with as_of %s",
        context.run.tags.get("mlp/drift_partition"),
        context.op_config.get("as_of"),
    )


@dg.job(name=keys.job_name(SPEC.name, keys.RETRAIN), executor_def=dg.in_process_executor)
def retrain_job() -> None:
    record_retrain_request()


defs = dg.Definitions(
    jobs=[retrain_job],
    sensors=[
        build_retrain_on_drift_sensor(
            SPEC,
            job=retrain_job,
            minimum_interval_seconds=1,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    ],
    resources={keys.RESOURCE_KEY: MlpResource()},
)
