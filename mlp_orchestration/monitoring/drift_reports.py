"""Reads drift reports and retrain runs back from a Dagster instance for the retrain policy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from mlp_orchestration import keys
from mlp_orchestration.alerts import Alert, drift_alert
from mlp_orchestration.monitoring.drift import column_method
from mlp_orchestration.monitoring.retrain_policy import (
    DriftReportRecord,
    RetrainCursor,
    RetrainDecision,
    decide_retrain,
)
from mlp_orchestration.spec import ModelSpec

logger = logging.getLogger(__name__)


def recent_drift_reports(
    instance: dg.DagsterInstance, model: str, *, limit: int
) -> list[DriftReportRecord]:
    """Return the newest ``limit`` drift report materializations of a model, newest first.

    Materializations without a partition (none are written by the drift asset) are left out.
    """
    result = instance.fetch_materializations(
        keys.asset_key(model, keys.DRIFT_REPORT), limit=limit, ascending=False
    )
    records = []
    for event in result.records:
        materialization = event.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        metadata = {name: value.value for name, value in materialization.metadata.items()}
        records.append(
            DriftReportRecord.from_metadata(
                storage_id=event.storage_id,
                partition_key=materialization.partition,
                metadata=metadata,
            )
        )
    return records


def last_run_created_at(instance: dg.DagsterInstance, job_name: str) -> datetime | None:
    """Return when the newest run of a job was created, whatever launched it."""
    run_records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name), limit=1)
    if not run_records:
        return None
    created = run_records[0].create_timestamp
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def evaluate_retrain(
    instance: dg.DagsterInstance,
    spec: ModelSpec,
    *,
    cursor: str | None,
    job_name: str,
    now: datetime | None = None,
) -> RetrainDecision:
    """Read the recent drift reports and retrain runs, and apply the retrain policy."""
    retrain = spec.monitoring.retrain
    records = recent_drift_reports(
        instance, spec.name, limit=max(50, 4 * retrain.consecutive_windows)
    )
    return decide_retrain(
        spec.name,
        records,
        RetrainCursor.from_json(cursor),
        consecutive_windows=retrain.consecutive_windows,
        cooldown=retrain.cooldown,
        now=now or datetime.now(UTC),
        last_retrain_at=last_run_created_at(instance, job_name),
    )


def retrain_run_config(spec: ModelSpec, decision: RetrainDecision) -> dict[str, Any]:
    """Run config of a drift-triggered retrain: its snapshot ends with the triggering window.

    Without it the retrain job would snapshot the spec's fixed as_of and relearn the champion's
    data; ending at the drifted window trains on the traffic that moved.
    """
    from mlp_orchestration.lifecycle import snapshot_run_config

    as_of = decision.triggering.window_end if decision.triggering else None
    return snapshot_run_config(spec, as_of)


def retrain_run_tags(decision: RetrainDecision) -> dict[str, str]:
    """Tags of the retrain run a decision requests: why, and which report triggered it."""
    triggering = decision.triggering
    return {
        "mlp/trigger": "drift",
        "mlp/drift_partition": decision.triggering_partition or "",
        "mlp/drift_report_event": str(triggering.storage_id) if triggering else "",
        "mlp/reason": decision.reason[:1000],
    }


def retrain_requested_alert(spec: ModelSpec, record: DriftReportRecord, *, run_key: str) -> Alert:
    """Build the drift alert sent when a drift report triggers a retrain run."""
    thresholds = {
        column: column_method(spec.monitoring.drift, column)[1] for column in record.drifted_scores
    }
    return drift_alert(
        spec.name,
        partition=record.partition_key,
        drifted_columns=record.drifted_scores,
        drift_share=record.drift_share or 0.0,
        report_url=record.report_url,
        action=f"retrain run requested (run key {run_key})",
        thresholds=thresholds,
        score_drift=record.score_drift,
    )
