"""Names written once: asset keys, groups, jobs, sensors, schedules and resource keys.

Every asset key is ``[model, name]``, so each model spec gets its own lineage in the UI.
"""

from __future__ import annotations

import dagster as dg

RESOURCE_KEY = "mlp"

TRANSACTIONS = "transactions"
FEATURE_SNAPSHOT = "feature_snapshot"
TRAINING_SET = "training_set"
CANDIDATE_MODEL = "candidate_model"
GATE_REPORT = "gate_report"
PROMOTION = "promotion"
SHADOW_EVALUATION = "shadow_evaluation"
DRIFT_REPORT = "drift_report"
MODEL_PERFORMANCE = "model_performance"
SERVING_HEALTH = "serving_health"

GROUP_DATA = "data"
GROUP_TRAINING = "training"
GROUP_DEPLOYMENT = "deployment"
GROUP_MONITORING = "monitoring"


def asset_key(model: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([model, name])


def group_name(model: str, group: str) -> str:
    return f"{model}_{group}"


def job_name(model: str, action: str) -> str:
    """Name of a per-model job, e.g. ``fraud_lifecycle_job`` or ``fraud_retrain_job``."""
    return f"{model}_{action}_job"


def sensor_name(model: str, action: str) -> str:
    return f"{model}_{action}_sensor"


def schedule_name(model: str, action: str) -> str:
    return f"{model}_{action}_schedule"


LIFECYCLE = "lifecycle"
RETRAIN = "retrain"
ROLLOUT = "rollout"
DRIFT = "drift"
RETRAIN_ON_DRIFT = "retrain_on_drift"
