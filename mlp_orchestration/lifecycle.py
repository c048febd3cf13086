"""Running the lifecycle jobs through the Dagster instance, and reading the platform's state.

``run_lifecycle`` executes a model's lifecycle or retrain job in-process against the persistent
instance under DAGSTER_HOME, so every run, materialization and check shows in `dagster dev`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg

from mlp_orchestration import keys, registry
from mlp_orchestration.errors import MlpError
from mlp_orchestration.evaluation import GateReport
from mlp_orchestration.instance import QUIET_LOGGERS
from mlp_orchestration.promotion import PromotionOutcome
from mlp_orchestration.routing import RoutingStore
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec, get_spec, load_specs
from mlp_orchestration.training import CandidateModel
from mlp_orchestration.warehouse import get_engine

logger = logging.getLogger(__name__)


class LifecycleRunError(MlpError):
    """A lifecycle or retrain run failed in a step other than a gate."""


@dataclass(frozen=True)
class LifecycleResult:
    run_id: str
    success: bool
    candidate: CandidateModel | None
    gate_report: GateReport | None
    promotion: PromotionOutcome | None
    checks: dict[str, bool]
    snapshot_hash: str | None
    rows_loaded: int | None


def snapshot_run_config(spec: ModelSpec, as_of: datetime | None) -> dict[str, Any]:
    """Run config that sets the feature snapshot's cut-off; empty keeps the spec's as_of."""
    if as_of is None:
        return {}
    snapshot_op = "__".join(keys.asset_key(spec.name, keys.FEATURE_SNAPSHOT).path)
    return {"ops": {snapshot_op: {"config": {"as_of": as_of.isoformat()}}}}


def run_lifecycle(
    settings: Settings,
    instance: dg.DagsterInstance,
    spec: ModelSpec,
    *,
    action: str = keys.LIFECYCLE,
    as_of: datetime | None = None,
    tags: dict[str, str] | None = None,
) -> LifecycleResult:
    """Execute the model's lifecycle (or retrain) job in-process on the given instance.

    A failed gate is a normal outcome (the result says which); any other failed step raises.
    """
    from mlp_orchestration.definitions import build_definitions

    definitions = build_definitions(settings)
    job = definitions.resolve_job_def(keys.job_name(spec.name, action))
    run_config: dict[str, Any] = {**QUIET_LOGGERS, **snapshot_run_config(spec, as_of)}
    result = job.execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, tags=tags or {}
    )
    checks = _check_results(result)
    outputs = {
        name: _asset_value(result, spec, name)
        for name in (keys.CANDIDATE_MODEL, keys.GATE_REPORT, keys.PROMOTION, keys.FEATURE_SNAPSHOT)
    }
    rows = _metadata_value(result, spec, keys.TRANSACTIONS, "dagster/row_count")
    gate_failed = any(not passed for name, passed in checks.items() if "all_gates_passed" in name)
    if not result.success and not gate_failed:
        failures = [
            f"step {event.step_key}: {_root_cause(event.event_specific_data.error)}"
            for event in result.all_events
            if event.is_step_failure and event.event_specific_data is not None
        ]
        failed_checks = [name for name, passed in checks.items() if not passed]
        detail = "; ".join(failures) or f"blocking checks failed: {failed_checks}"
        raise LifecycleRunError(
            f"{job.name} run {result.run_id} failed in {detail}\nThe run's full log is in the "
            f"Dagster UI: {settings.dagster_ui_url}/runs/{result.run_id} (start it with `mlp ui`)."
        )
    snapshot = outputs[keys.FEATURE_SNAPSHOT]
    return LifecycleResult(
        run_id=result.run_id,
        success=result.success,
        candidate=outputs[keys.CANDIDATE_MODEL],
        gate_report=outputs[keys.GATE_REPORT],
        promotion=outputs[keys.PROMOTION],
        checks=checks,
        snapshot_hash=snapshot.snapshot_hash if snapshot is not None else None,
        rows_loaded=int(rows) if rows is not None else None,
    )


def _root_cause(error: Any) -> str:
    """The message of the step's own error: the first project error Dagster wrapped, else the
    innermost one (a project error's own cause is a library detail its message already covers)."""
    project_errors = _project_error_names()
    innermost = error
    while error is not None:
        if error.cls_name in project_errors:
            return error.message.strip()
        innermost = error
        error = getattr(error, "cause", None)
    return innermost.message.strip()


def _project_error_names() -> set[str]:
    names: set[str] = set()
    pending: list[type] = [MlpError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def _asset_value(result: dg.ExecuteInProcessResult, spec: ModelSpec, name: str) -> Any:
    key = keys.asset_key(spec.name, name)
    materialized = {
        event.materialization.asset_key for event in result.get_asset_materialization_events()
    }
    return result.asset_value(key) if key in materialized else None


def _metadata_value(
    result: dg.ExecuteInProcessResult, spec: ModelSpec, name: str, entry: str
) -> Any:
    key = keys.asset_key(spec.name, name)
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == key and entry in materialization.metadata:
            return materialization.metadata[entry].value
    return None


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    checks = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            checks[evaluation.check_name] = evaluation.passed
    return checks


def model_status(settings: Settings, spec: ModelSpec) -> dict[str, Any]:
    """Champion, challenger, routing and the champion's holdout figures for one model."""
    client = registry.configure(settings)
    routing = RoutingStore(get_engine(settings.warehouse_url)).current(spec.name)
    champion = registry.alias_version(client, spec.name, registry.CHAMPION)
    challenger = registry.alias_version(client, spec.name, registry.CHALLENGER)
    routed_champion = routing.champion_version if routing else None
    status: dict[str, Any] = {
        "champion_version": champion,
        "challenger_version": challenger,
        "routing_version": routing.version if routing else None,
        "routing_champion_version": routed_champion,
        "canary_version": routing.canary_version if routing else None,
        "canary_share": routing.canary_share if routing else None,
        "shadow_versions": list(routing.shadow_versions) if routing else [],
        # No champion alias and no routing config is consistent: nothing is deployed yet.
        "consistent": champion == routed_champion,
        "holdout": None,
        "snapshot_hash": None,
    }
    if champion is not None:
        tags = registry.get_version(client, spec.name, champion).tags
        status["holdout"] = {
            "pr_auc": float(tags["holdout_pr_auc"]) if "holdout_pr_auc" in tags else None,
            "roc_auc": float(tags["holdout_roc_auc"]) if "holdout_roc_auc" in tags else None,
        }
        status["snapshot_hash"] = tags.get("snapshot_hash")
        status["decision_threshold"] = (
            float(tags["decision_threshold"]) if "decision_threshold" in tags else None
        )
        status["gate_verdict"] = tags.get("gate_verdict")
    return status


def platform_status(settings: Settings) -> dict[str, Any]:
    specs = load_specs(settings.specs_dir)
    return {"models": {name: model_status(settings, spec) for name, spec in specs.items()}}


def ensure_champion(settings: Settings, model: str = "fraud") -> str:
    """Return the model's champion version, running the lifecycle first when there is none."""
    from mlp_orchestration.instance import open_instance

    spec = get_spec(load_specs(settings.specs_dir), model)
    client = registry.configure(settings)
    champion = registry.alias_version(client, model, registry.CHAMPION)
    if champion is not None:
        return champion
    logger.info("no champion for %s in %s; running the lifecycle first", model, settings.home_dir)
    result = run_lifecycle(settings, open_instance(settings), spec)
    if result.promotion is None or result.promotion.champion_version is None:
        reason = result.gate_report.summary()["failures"] if result.gate_report else "unknown"
        raise LifecycleRunError(f"the lifecycle produced no champion for {model}: {reason}")
    return result.promotion.champion_version
