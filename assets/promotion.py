"""Promotion: a gated candidate becomes champion (if none) or challenger."""

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.evaluation import GateReport
from mlp_orchestration.promotion import promote_after_gates
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.retraining import retrain_finished_alert, retrain_trigger
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import CandidateModel


def build_promotion_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=keys.asset_key(spec.name, keys.PROMOTION),
        ins={
            "candidate": dg.AssetIn(key=keys.asset_key(spec.name, keys.CANDIDATE_MODEL)),
            "report": dg.AssetIn(key=keys.asset_key(spec.name, keys.GATE_REPORT)),
        },
        group_name=keys.group_name(spec.name, keys.GROUP_DEPLOYMENT),
        description="Registry aliases and routing after the gates: champion or challenger.",
    )
    def promotion(
        context: dg.AssetExecutionContext,
        mlp: MlpResource,
        candidate: CandidateModel,
        report: GateReport,
    ) -> dg.Output:
        settings = mlp.settings()
        outcome = promote_after_gates(
            settings,
            mlp.routing(),
            spec,
            candidate,
            report,
            actor=settings.actor,
            context={"dagster_run_id": context.run.run_id},
        )
        context.log.info(outcome.reason)
        trigger = retrain_trigger(spec.name, context.job_name, context.run.tags)
        if trigger is not None:
            mlp.alerts().send(
                retrain_finished_alert(
                    settings, candidate, outcome, run_id=context.run.run_id, trigger=trigger
                )
            )
        return dg.Output(
            outcome,
            metadata={
                "action": dg.MetadataValue.text(outcome.action),
                "version": dg.MetadataValue.text(outcome.version),
                "champion_version": dg.MetadataValue.text(outcome.champion_version or "none"),
                "challenger_version": dg.MetadataValue.text(outcome.challenger_version or "none"),
                "routing_version": dg.MetadataValue.int(outcome.routing_version or 0),
                "reason": dg.MetadataValue.text(outcome.reason),
            },
        )

    return [promotion]
