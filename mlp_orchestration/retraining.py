"""Retrain notifications: who hears that a retrain started and how it ended.

A run of the retrain job carries the ``mlp/trigger`` tag (``drift`` from the retrain sensor,
``schedule`` from the periodic schedule, ``demo`` from `mlp demo`). The first step of such a run
announces it, and the promotion step reports the outcome. A failed gate reports through its own
gate alert, and a crashed run through the run-failure sensor.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlp_orchestration import keys, registry
from mlp_orchestration.alerts import Alert, dagster_run_url, retrain_alert
from mlp_orchestration.promotion import PromotionOutcome
from mlp_orchestration.settings import Settings
from mlp_orchestration.training import CandidateModel

TRIGGER_TAG = "mlp/trigger"


def retrain_trigger(model: str, job_name: str, tags: Mapping[str, str]) -> str | None:
    """Describe why a retrain run runs, or None when the run is not a retrain run."""
    if job_name != keys.job_name(model, keys.RETRAIN):
        return None
    trigger = tags.get(TRIGGER_TAG, "manual")
    partition = tags.get("mlp/drift_partition")
    if trigger == "drift" and partition:
        return f"sustained drift up to window {partition}"
    return trigger


def retrain_started_alert(settings: Settings, model: str, *, run_id: str, trigger: str) -> Alert:
    return retrain_alert(
        model, run_id=run_id, run_url=dagster_run_url(settings, run_id), trigger=trigger
    )


def retrain_finished_alert(
    settings: Settings,
    candidate: CandidateModel,
    outcome: PromotionOutcome,
    *,
    run_id: str,
    trigger: str,
) -> Alert:
    return retrain_alert(
        candidate.model,
        run_id=run_id,
        run_url=dagster_run_url(settings, run_id),
        trigger=trigger,
        outcome="challenger" if outcome.action != "blocked" else "gate_failed",
        candidate_version=candidate.version,
        metrics={
            "holdout PR-AUC": candidate.metrics["holdout_pr_auc"],
            "holdout ROC-AUC": candidate.metrics["holdout_roc_auc"],
        },
        version_url=registry.version_url(settings, candidate.model, candidate.version),
    )
