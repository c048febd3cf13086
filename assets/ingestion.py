"""Ingestion: the model's dataset, verified and loaded into the warehouse."""

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.data import INGESTERS
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.spec import ModelSpec


def build_ingestion_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    ingest = INGESTERS[spec.dataset]

    @dg.asset(
        key=keys.asset_key(spec.name, keys.TRANSACTIONS),
        group_name=keys.group_name(spec.name, keys.GROUP_DATA),
        description=f"Verified {spec.dataset} transactions in the warehouse, with event times.",
        kinds={"sql"},
    )
    def transactions(context: dg.AssetExecutionContext, mlp: MlpResource) -> dg.MaterializeResult:
        result = ingest(mlp.settings(), mlp.engine())
        context.log.info("%s rows present, %s inserted", result.rows, result.inserted)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(result.rows),
                "inserted_rows": dg.MetadataValue.int(result.inserted),
                "positives": dg.MetadataValue.int(result.positives),
                "checksum": dg.MetadataValue.text(result.checksum),
                "source": dg.MetadataValue.text(result.source),
                "first_event": dg.MetadataValue.text(result.first_event),
                "last_event": dg.MetadataValue.text(result.last_event),
            }
        )

    return [transactions]
