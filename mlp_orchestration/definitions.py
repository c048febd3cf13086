"""The code location: every model spec's assets, checks, jobs, sensors and schedules."""

from __future__ import annotations

import dagster as dg

from assets.gates import build_gate_assets
from assets.ingestion import build_ingestion_assets
from assets.monitoring import build_monitoring_assets
from assets.promotion import build_promotion_assets
from assets.shadow import build_shadow_assets
from assets.snapshot import build_snapshot_assets
from assets.training import build_training_assets
from mlp_orchestration import keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.settings import Settings, get_settings
from mlp_orchestration.spec import load_specs
from sensors.alerts import build_alert_sensors
from sensors.jobs import build_jobs
from sensors.retrain import build_retrain_sensors
from sensors.rollout import build_rollout_sensors

_ASSET_BUILDERS = (
    build_ingestion_assets,
    build_snapshot_assets,
    build_training_assets,
    build_gate_assets,
    build_promotion_assets,
    build_shadow_assets,
    build_monitoring_assets,
)


def build_definitions(settings: Settings) -> dg.Definitions:
    assets: list = []
    jobs: list = []
    sensors: list = []
    schedules: list = []
    for spec in load_specs(settings.specs_dir).values():
        for build in _ASSET_BUILDERS:
            assets.extend(build(spec))
        lifecycle_job, retrain_job = build_jobs(spec)
        jobs.extend([lifecycle_job, retrain_job])
        sensors.extend(build_rollout_sensors(spec))
        for definition in build_retrain_sensors(spec, retrain_job):
            target = sensors if isinstance(definition, dg.SensorDefinition) else schedules
            target.append(definition)
    sensors.extend(build_alert_sensors())
    executor = (
        dg.in_process_executor
        if settings.dagster_executor == "in_process"
        else dg.multiprocess_executor
    )
    return dg.Definitions(
        # AssetChecksDefinition derives from AssetsDefinition, so test for checks first.
        assets=[a for a in assets if not isinstance(a, dg.AssetChecksDefinition)],
        asset_checks=[a for a in assets if isinstance(a, dg.AssetChecksDefinition)],
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={keys.RESOURCE_KEY: MlpResource()},
        executor=executor,
    )


defs = build_definitions(get_settings())
