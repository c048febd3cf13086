"""Feature snapshot: the point-in-time slice for the training windows, and its data checks."""

import dagster as dg
import pandas as pd

from mlp_orchestration import features, keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.retraining import retrain_started_alert, retrain_trigger
from mlp_orchestration.spec import ModelSpec, parse_as_of
from mlp_orchestration.validation import SNAPSHOT_CHECKS, run_snapshot_checks


class SnapshotConfig(dg.Config):
    as_of: str | None = None
    """Cut-off of the snapshot (ISO 8601); default: the spec's windows.as_of."""


def build_snapshot_assets(spec: ModelSpec) -> list:
    snapshot_key = keys.asset_key(spec.name, keys.FEATURE_SNAPSHOT)

    @dg.asset(
        key=snapshot_key,
        deps=[keys.asset_key(spec.name, keys.TRANSACTIONS)],
        group_name=keys.group_name(spec.name, keys.GROUP_DATA),
        description="Point-in-time feature slice for the training windows, stored as Parquet.",
        kinds={"parquet"},
    )
    def feature_snapshot(
        context: dg.AssetExecutionContext, config: SnapshotConfig, mlp: MlpResource
    ) -> dg.Output:
        trigger = retrain_trigger(spec.name, context.job_name, context.run.tags)
        if trigger is not None:
            mlp.alerts().send(
                retrain_started_alert(
                    mlp.settings(), spec.name, run_id=context.run.run_id, trigger=trigger
                )
            )
        engine = mlp.engine()
        frame, bounds = features.build_snapshot(
            engine, spec, as_of=parse_as_of(config.as_of, source="run config as_of")
        )
        record = features.store_snapshot(mlp.settings(), engine, spec, frame, bounds)
        return dg.Output(
            record,
            metadata={
                "dagster/row_count": dg.MetadataValue.int(record.rows),
                "snapshot_hash": dg.MetadataValue.text(record.snapshot_hash),
                "positives": dg.MetadataValue.int(record.positives),
                "as_of": dg.MetadataValue.text(record.as_of.isoformat()),
                "windows": dg.MetadataValue.json(record.windows),
                "path": dg.MetadataValue.path(record.path),
                "reused": dg.MetadataValue.bool(record.reused),
            },
        )

    @dg.multi_asset_check(
        name=f"{spec.name}_feature_snapshot_checks",
        specs=[
            dg.AssetCheckSpec(
                name,
                asset=snapshot_key,
                blocking=True,
                description=(check.__doc__ or name).strip().splitlines()[0],
            )
            for name, check in SNAPSHOT_CHECKS.items()
        ],
        ins={"snapshot": dg.AssetIn(key=snapshot_key)},
    )
    def snapshot_checks(mlp: MlpResource, snapshot: features.SnapshotRecord):
        frame = pd.read_parquet(snapshot.path)
        bounds = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in snapshot.windows.items()}
        for outcome in run_snapshot_checks(frame, spec, bounds):
            yield dg.AssetCheckResult(
                asset_key=snapshot_key,
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR
                if outcome.blocking
                else dg.AssetCheckSeverity.WARN,
                description=outcome.message,
                metadata={
                    "figures": dg.MetadataValue.json(outcome.figures),
                    "message": dg.MetadataValue.text(outcome.message),
                },
            )

    return [feature_snapshot, snapshot_checks]
