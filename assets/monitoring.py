"""Monitoring: drift reports per time window, delayed-label performance and serving health."""

import time
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.alerts import slo_alert
from mlp_orchestration.monitoring.drift import STATUS_OK, compute_window, record_report_path
from mlp_orchestration.monitoring.health import check_slos, compute_health, scrape_service_metrics
from mlp_orchestration.monitoring.partitions import drift_partitions
from mlp_orchestration.monitoring.performance import PerformanceWindow, compute_performance
from mlp_orchestration.monitoring.reference import load_champion_reference
from mlp_orchestration.monitoring.report import render_drift_report, report_path
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.spec import ModelSpec

SLO_CHECKS = {
    "p99_latency_ms": "p99_latency_slo",
    "error_rate": "error_rate_slo",
    "availability": "availability_slo",
}


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """Return the drift_report, model_performance and serving_health assets (with SLO checks)."""
    return [_drift_report(spec), _model_performance(spec), _serving_health(spec)]


def _value(value: Any) -> dg.MetadataValue:
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return dg.MetadataValue.json(value)


def to_metadata(values: Mapping[str, Any]) -> dict[str, dg.MetadataValue]:
    """Wrap plain figures as typed Dagster metadata; None becomes a null value."""
    return {name: _value(value) for name, value in values.items()}


def _drift_report(spec: ModelSpec) -> dg.AssetsDefinition:
    key = keys.asset_key(spec.name, keys.DRIFT_REPORT)

    @dg.asset(
        key=key,
        partitions_def=drift_partitions(spec.monitoring.drift),
        group_name=keys.group_name(spec.name, keys.GROUP_MONITORING),
        description="Data and score drift of one prediction-log window against the champion's "
        "training snapshot, with an Evidently HTML report.",
        kinds={"evidently", "python"},
    )
    def drift_report(
        context: dg.AssetExecutionContext, mlp: MlpResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        settings, engine = mlp.settings(), mlp.engine()
        window = context.partition_time_window
        reference = load_champion_reference(settings, engine, spec)

        result = compute_window(
            spec,
            engine=engine,
            reference=reference,
            window_start=window.start,
            window_end=window.end,
        )

        metadata = to_metadata(result.as_metadata())
        path = report_path(settings, spec.name, window.start)
        rendered = result.figures.status == STATUS_OK
        if rendered:
            metadata["report"] = dg.MetadataValue.path(str(path))
            metadata["report_url"] = dg.MetadataValue.url(path.as_uri())
        # The figures are recorded first, so the retrain sensor can read them while the HTML
        # report (a few seconds of plotting) is still being written.
        yield dg.MaterializeResult(metadata=metadata)

        if not rendered:
            context.log.info("no HTML report: %s", result.figures.reason)
            return
        started = time.perf_counter()
        render_drift_report(result, reference, spec.monitoring.drift, path=path)
        record_report_path(engine, result, path)
        yield dg.AssetObservation(
            asset_key=key,
            partition=context.partition_key,
            metadata={
                "report": dg.MetadataValue.path(str(path)),
                "render_seconds": dg.MetadataValue.float(time.perf_counter() - started),
            },
        )

    return drift_report


def _model_performance(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.asset_key(spec.name, keys.MODEL_PERFORMANCE),
        group_name=keys.group_name(spec.name, keys.GROUP_MONITORING),
        description="PR-AUC, precision and recall at the alert rate per model version and "
        "window, from delayed labels; windows still waiting for labels are marked incomplete.",
    )
    def model_performance(mlp: MlpResource) -> dg.MaterializeResult:
        windows = compute_performance(spec, engine=mlp.engine(), client=mlp.mlflow())
        complete = [window for window in windows if window.complete]
        latest = complete[-1].as_dict() if complete else None
        return dg.MaterializeResult(
            metadata={
                "windows": dg.MetadataValue.int(len(windows)),
                "complete_windows": dg.MetadataValue.int(len(complete)),
                "incomplete_windows": dg.MetadataValue.int(len(windows) - len(complete)),
                "latest_complete": _value(latest),
                "recent": dg.MetadataValue.md(_performance_table(windows[-12:])),
            }
        )

    return model_performance


def _performance_table(windows: list[PerformanceWindow]) -> str:
    lines = [
        "| window start | version | rows | coverage | PR-AUC | precision | recall "
        "| threshold from |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for window in windows:
        lines.append(
            f"| {window.window_start:%Y-%m-%d %H:%M} | {window.model_version} | {window.rows} | "
            f"{window.label_coverage:.2f} | {_fmt(window.pr_auc)} | "
            f"{_fmt(window.precision_at_alert_rate)} | {_fmt(window.recall_at_alert_rate)} | "
            f"{window.threshold_source if window.complete else 'incomplete'} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _serving_health(spec: ModelSpec) -> dg.AssetsDefinition:
    key = keys.asset_key(spec.name, keys.SERVING_HEALTH)
    slo = spec.monitoring.slo

    @dg.asset(
        key=key,
        group_name=keys.group_name(spec.name, keys.GROUP_MONITORING),
        description="Requests, error rate, latency percentiles and availability per window, "
        "model version and arm, from the prediction log and the service's /metrics.",
        check_specs=[
            dg.AssetCheckSpec(check, asset=key, description=f"Newest window within {objective} SLO")
            for objective, check in SLO_CHECKS.items()
        ],
    )
    def serving_health(context: dg.AssetExecutionContext, mlp: MlpResource):
        settings = mlp.settings()
        windows = compute_health(spec, engine=mlp.engine())
        results = check_slos(slo, windows)
        scrape = scrape_service_metrics(settings.scoring_url, spec.name)
        newest = windows[-1].window_start.isoformat() if windows else None
        check_results = [
            dg.AssetCheckResult(
                check_name=SLO_CHECKS[result.objective],
                passed=result.passed,
                description=(
                    f"{result.checked} served version/arm pair(s) checked in the newest window"
                    if result.checked
                    else "no served requests in the lookback; nothing to check"
                ),
                metadata={
                    "limit": dg.MetadataValue.float(result.limit),
                    "breaches": dg.MetadataValue.json(list(result.breaches)),
                },
            )
            for result in results
        ]
        breaches = [breach for result in results for breach in result.breaches]
        if breaches:
            context.log.warning("SLO breached in window %s: %s", newest, breaches)
            mlp.alerts().send(slo_alert(spec.name, window=str(newest), breaches=breaches))
        return dg.MaterializeResult(
            metadata={
                "windows": dg.MetadataValue.int(len({w.window_start for w in windows})),
                "newest_window": _value(newest),
                "newest": dg.MetadataValue.json(
                    [w.as_dict() for w in windows if w.window_start.isoformat() == newest]
                ),
                "scoring_service": dg.MetadataValue.text(
                    "reachable" if scrape.reachable else f"unreachable: {scrape.error}"
                ),
                "scoring_service_totals": _value(scrape.samples),
            },
            check_results=check_results,
        )

    return serving_health
