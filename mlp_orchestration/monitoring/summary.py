"""Drift reports for a replayed period and the retrain sensor's verdict on them, for the demo.

The library never imports ``assets/`` or ``sensors/``, so the caller passes the drift asset and
the sensor, usually taken from the code location's ``Definitions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from mlp_orchestration.instance import QUIET_LOGGERS
from mlp_orchestration.monitoring.drift_reports import recent_drift_reports
from mlp_orchestration.monitoring.retrain_policy import RETRAIN, SKIP


@dataclass(frozen=True)
class RetrainSummary:
    """The retrain sensor's decision after the drift reports, with its reason."""

    decision: str  # "retrain" or "skip"
    reason: str
    run_key: str | None
    triggering_partition: str | None
    windows: list[dict[str, Any]] = field(default_factory=list)


def materialize_drift_reports(
    drift_asset: dg.AssetsDefinition,
    *,
    instance: dg.DagsterInstance,
    partition_keys: Sequence[str],
    resources: Mapping[str, Any],
) -> list[str]:
    """Materialize each partition of the drift asset through Dagster; return the run ids.

    Raises:
        dagster.DagsterExecutionStepExecutionError: a window failed (the error names it).
    """
    run_ids = []
    for partition_key in partition_keys:
        result = dg.materialize(
            [drift_asset],
            instance=instance,
            partition_key=partition_key,
            resources=dict(resources),
            tags={"mlp/trigger": "demo"},
            run_config=QUIET_LOGGERS,
        )
        run_ids.append(result.run_id)
    return run_ids


def evaluate_retrain_sensor(
    sensor: dg.SensorDefinition,
    *,
    instance: dg.DagsterInstance,
    model: str,
    resources: Mapping[str, Any],
    cursor: str | None = None,
) -> RetrainSummary:
    """Evaluate the retrain-on-drift sensor once against the instance and summarize its result.

    Evaluating does not launch the run it requests; the daemon or the caller does that.
    """
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=dict(resources))
    result = sensor.evaluate_tick(context)
    windows = [
        {
            "partition": record.partition_key,
            "status": record.status,
            "drift_detected": record.drift_detected,
            "drift_share": record.drift_share,
            "score_drift": record.score_drift,
        }
        for record in sorted(
            recent_drift_reports(instance, model, limit=100), key=lambda r: r.window_start
        )
    ]
    if result.run_requests:
        request = result.run_requests[0]
        return RetrainSummary(
            decision=RETRAIN,
            reason=request.tags.get("mlp/reason", ""),
            run_key=request.run_key,
            triggering_partition=request.tags.get("mlp/drift_partition") or None,
            windows=windows,
        )
    return RetrainSummary(
        decision=SKIP,
        reason=result.skip_message or "",
        run_key=None,
        triggering_partition=None,
        windows=windows,
    )


def drift_and_retrain_summary(
    drift_asset: dg.AssetsDefinition,
    sensor: dg.SensorDefinition,
    *,
    instance: dg.DagsterInstance,
    model: str,
    partition_keys: Sequence[str],
    resources: Mapping[str, Any],
) -> RetrainSummary:
    """Materialize the drift reports of ``partition_keys``, then evaluate the sensor once."""
    materialize_drift_reports(
        drift_asset, instance=instance, partition_keys=partition_keys, resources=resources
    )
    return evaluate_retrain_sensor(sensor, instance=instance, model=model, resources=resources)
