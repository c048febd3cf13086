"""Shadow evaluation: the challenger scores the champion's traffic; the shadow gate judges it."""

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.rollout.shadow_run import run_shadow_evaluation
from mlp_orchestration.spec import ModelSpec

SHADOW_GATE_CHECK = "shadow_gate"


class ShadowEvaluationConfig(dg.Config):
    """Versions to compare; by default the rollout's shadow candidate against the champion."""

    challenger_version: str | None = None
    champion_version: str | None = None


def build_shadow_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """Return the model's shadow_evaluation asset, with the shadow gate as its asset check."""
    key = keys.asset_key(spec.name, keys.SHADOW_EVALUATION)

    @dg.asset(
        key=key,
        deps=[keys.asset_key(spec.name, keys.PROMOTION)],
        group_name=keys.group_name(spec.name, keys.GROUP_DEPLOYMENT),
        check_specs=[
            dg.AssetCheckSpec(
                SHADOW_GATE_CHECK,
                asset=key,
                description="Agreement, flips, score correlation and PSI within the spec's "
                "shadow thresholds; the canary starts only when it passes.",
            )
        ],
        description="Challenger against champion on the same requests: agreement, flipped "
        "decisions, score shift, latency and delayed-label quality, with an HTML report.",
        kinds={"python"},
    )
    def shadow_evaluation(
        context: dg.AssetExecutionContext, config: ShadowEvaluationConfig, mlp: MlpResource
    ) -> dg.MaterializeResult:
        settings = mlp.settings()
        evaluation = run_shadow_evaluation(
            RolloutContext.create(settings, spec),
            actor=f"{settings.actor} (dagster run {context.run.run_id[:8]})",
            challenger_version=config.challenger_version,
            champion_version=config.champion_version,
        )
        brief = evaluation.brief()
        context.log.info(
            f"shadow gate {evaluation.gate.verdict} for version "
            f"{brief['challenger_version']} over {brief['requests']} paired requests"
        )
        report = dg.MetadataValue.path(str(evaluation.report_path))
        return dg.MaterializeResult(
            metadata={
                "verdict": evaluation.gate.verdict,
                "challenger_version": brief["challenger_version"],
                "champion_version": brief["champion_version"],
                "paired_requests": brief["requests"],
                "agreement": _number(brief["agreement"]),
                "flipped": brief["flipped"],
                "score_correlation": _number(brief["score_correlation"]),
                "score_psi": _number(brief["score_psi"]),
                "labelled_positives": brief["labelled_positives"],
                "report": report,
                "summary": dg.MetadataValue.json(evaluation.summary.as_dict()),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=SHADOW_GATE_CHECK,
                    passed=evaluation.gate.passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description="; ".join(c.message for c in evaluation.gate.failures)
                    or "every shadow check passed",
                    metadata={
                        "verdict": evaluation.gate.verdict,
                        "checks": dg.MetadataValue.json(evaluation.gate.as_dict()["checks"]),
                        "report": report,
                    },
                )
            ],
        )

    return [shadow_evaluation]


def _number(value: float | None) -> dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.float(value)
