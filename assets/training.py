"""Training: the time-split training set and the registered candidate model."""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from mlp_orchestration import features, keys, registry
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import train_candidate


@dataclass(frozen=True)
class TrainingSet:
    """A snapshot cut into training, validation and holdout windows."""

    snapshot: features.SnapshotRecord
    rows: dict[str, int]
    positives: dict[str, int]


def build_training_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    group = keys.group_name(spec.name, keys.GROUP_TRAINING)

    @dg.asset(
        key=keys.asset_key(spec.name, keys.TRAINING_SET),
        ins={"snapshot": dg.AssetIn(key=keys.asset_key(spec.name, keys.FEATURE_SNAPSHOT))},
        group_name=group,
        description="The snapshot split by event time into training, validation and holdout.",
    )
    def training_set(snapshot: features.SnapshotRecord) -> dg.Output:
        splits = _splits(spec, snapshot)
        result = TrainingSet(
            snapshot=snapshot,
            rows={name: len(frame) for name, frame in splits.items()},
            positives={name: int(frame[spec.label].sum()) for name, frame in splits.items()},
        )
        return dg.Output(
            result,
            metadata={
                "snapshot_hash": dg.MetadataValue.text(snapshot.snapshot_hash),
                "rows": dg.MetadataValue.json(result.rows),
                "positives": dg.MetadataValue.json(result.positives),
                "windows": dg.MetadataValue.json(snapshot.windows),
            },
        )

    @dg.asset(
        key=keys.asset_key(spec.name, keys.CANDIDATE_MODEL),
        ins={"training_set": dg.AssetIn(key=keys.asset_key(spec.name, keys.TRAINING_SET))},
        group_name=group,
        description="LightGBM candidate logged to MLflow and registered as a new model version.",
        kinds={"lightgbm", "mlflow"},
    )
    def candidate_model(
        context: dg.AssetExecutionContext, mlp: MlpResource, training_set: TrainingSet
    ) -> dg.Output:
        settings = mlp.settings()
        splits = _splits(spec, training_set.snapshot)
        candidate = train_candidate(
            settings,
            spec,
            training_set.snapshot,
            splits,
            run_tags={"mlp.dagster_run_id": context.run.run_id},
        )
        metrics = candidate.metrics
        return dg.Output(
            candidate,
            metadata={
                "model_version": dg.MetadataValue.text(candidate.version),
                "holdout_pr_auc": dg.MetadataValue.float(metrics["holdout_pr_auc"]),
                "holdout_roc_auc": dg.MetadataValue.float(metrics["holdout_roc_auc"]),
                "validation_pr_auc": dg.MetadataValue.float(metrics["validation_pr_auc"]),
                "best_iteration": dg.MetadataValue.int(int(metrics["best_iteration"])),
                "decision_threshold": dg.MetadataValue.float(candidate.decision_threshold),
                "snapshot_hash": dg.MetadataValue.text(candidate.snapshot_hash),
                "mlflow_run": dg.MetadataValue.url(
                    registry.run_url(settings, candidate.experiment_id, candidate.run_id)
                ),
                "mlflow_model_version": dg.MetadataValue.url(
                    registry.version_url(settings, spec.name, candidate.version)
                ),
            },
        )

    return [training_set, candidate_model]


def _splits(spec: ModelSpec, snapshot: features.SnapshotRecord) -> dict[str, pd.DataFrame]:
    frame = pd.read_parquet(snapshot.path)
    bounds = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in snapshot.windows.items()}
    return features.split_frame(frame, spec, bounds)
