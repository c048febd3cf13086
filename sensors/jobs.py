"""Jobs over the lifecycle assets: the whole lifecycle, and a retrain from the snapshot on."""

from __future__ import annotations

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.spec import ModelSpec

LIFECYCLE_ASSETS = (
    keys.TRANSACTIONS,
    keys.FEATURE_SNAPSHOT,
    keys.TRAINING_SET,
    keys.CANDIDATE_MODEL,
    keys.GATE_REPORT,
    keys.PROMOTION,
)


def build_jobs(spec: ModelSpec) -> tuple[dg.UnresolvedAssetJobDefinition, ...]:
    lifecycle = dg.define_asset_job(
        name=keys.job_name(spec.name, keys.LIFECYCLE),
        selection=dg.AssetSelection.assets(
            *[keys.asset_key(spec.name, name) for name in LIFECYCLE_ASSETS]
        ),
        description=f"Load data, snapshot, check, train, gate and promote {spec.name}.",
        tags={"mlp/model": spec.name},
    )
    retrain = dg.define_asset_job(
        name=keys.job_name(spec.name, keys.RETRAIN),
        selection=dg.AssetSelection.assets(
            *[keys.asset_key(spec.name, name) for name in LIFECYCLE_ASSETS[1:]]
        ),
        description=f"Retrain {spec.name} on a new snapshot, gate it and hand it to the rollout.",
        tags={"mlp/model": spec.name},
    )
    return lifecycle, retrain
