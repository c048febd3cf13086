"""Gates: performance, segments, bias and consistency verdicts on the candidate."""

import dagster as dg

from mlp_orchestration import keys, registry
from mlp_orchestration.alerts import dagster_run_url, gate_failure_alert
from mlp_orchestration.evaluation import GateReport, evaluate_candidate
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import CandidateModel

ALL_GATES_PASSED = "all_gates_passed"


def build_gate_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    key = keys.asset_key(spec.name, keys.GATE_REPORT)

    @dg.asset(
        key=key,
        ins={"candidate": dg.AssetIn(key=keys.asset_key(spec.name, keys.CANDIDATE_MODEL))},
        group_name=keys.group_name(spec.name, keys.GROUP_TRAINING),
        description="Gate verdicts on the candidate's holdout, with an HTML report.",
        check_specs=[
            dg.AssetCheckSpec(
                ALL_GATES_PASSED,
                asset=key,
                blocking=True,
                description="Every gate passed; a failure blocks promotion to challenger.",
            )
        ],
    )
    def gate_report(context: dg.AssetExecutionContext, mlp: MlpResource, candidate: CandidateModel):
        report = evaluate_candidate(mlp.settings(), mlp.engine(), spec, candidate)
        yield dg.Output(report, metadata=_metadata(report))
        failures = "; ".join(f["message"] for f in report.failures)
        yield dg.AssetCheckResult(
            check_name=ALL_GATES_PASSED,
            passed=report.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="every gate passed" if report.passed else failures,
            metadata={"failures": dg.MetadataValue.json(report.failures)},
        )
        if not report.passed:
            context.log.warning("gates failed for v%s: %s", candidate.version, failures)
            settings = mlp.settings()
            mlp.alerts().send(
                gate_failure_alert(
                    spec.name,
                    version=candidate.version,
                    failures=report.failures,
                    run_url=dagster_run_url(settings, context.run.run_id),
                    version_url=registry.version_url(settings, spec.name, candidate.version),
                    report_url=report.report_path,
                )
            )

    return [gate_report]


def _metadata(report: GateReport) -> dict[str, dg.MetadataValue]:
    metadata = {
        "verdict": dg.MetadataValue.text("passed" if report.passed else "failed"),
        "gates": dg.MetadataValue.json(report.verdicts()),
        "champion_version": dg.MetadataValue.text(report.champion_version or "none"),
        "report": dg.MetadataValue.path(report.report_path),
        "report_url": dg.MetadataValue.url(f"file://{report.report_path}"),
    }
    for result in report.results:
        for check in result.checks:
            if check.value is not None:
                metadata[f"{result.gate}/{check.check}"] = dg.MetadataValue.float(check.value)
    return metadata
