"""The code location loads, with exactly the expected assets, checks, jobs, sensors, schedules."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from mlp_orchestration.definitions import build_definitions
from mlp_orchestration.settings import get_settings

EXPECTED_ASSETS = [
    "fraud/candidate_model",
    "fraud/drift_report",
    "fraud/feature_snapshot",
    "fraud/gate_report",
    "fraud/model_performance",
    "fraud/promotion",
    "fraud/serving_health",
    "fraud/shadow_evaluation",
    "fraud/training_set",
    "fraud/transactions",
]
EXPECTED_CHECKS = [
    "fraud/feature_snapshot:duplicate_ids",
    "fraud/feature_snapshot:label_leakage",
    "fraud/feature_snapshot:label_rate",
    "fraud/feature_snapshot:missing_rates",
    "fraud/feature_snapshot:ranges",
    "fraud/feature_snapshot:row_counts",
    "fraud/feature_snapshot:schema",
    "fraud/feature_snapshot:types",
    "fraud/gate_report:all_gates_passed",
    "fraud/serving_health:availability_slo",
    "fraud/serving_health:error_rate_slo",
    "fraud/serving_health:p99_latency_slo",
    "fraud/shadow_evaluation:shadow_gate",
]
EXPECTED_JOBS = ["fraud_drift_job", "fraud_lifecycle_job", "fraud_retrain_job"]
EXPECTED_SENSORS = [
    "fraud_retrain_on_drift_sensor",
    "fraud_rollout_sensor",
    "run_failure_alert_sensor",
]
EXPECTED_SCHEDULES = ["fraud_drift_schedule", "fraud_retrain_schedule"]


def test_definitions_load_with_expected_contents():
    definitions = build_definitions(get_settings())
    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()

    assets = sorted(k.to_user_string() for k in repository.asset_graph.get_all_asset_keys())
    checks = sorted(
        f"{k.asset_key.to_user_string()}:{k.name}" for k in repository.asset_graph.asset_check_keys
    )
    jobs = sorted(j.name for j in repository.get_all_jobs() if not j.name.startswith("__"))
    assert assets == EXPECTED_ASSETS
    assert checks == EXPECTED_CHECKS
    assert jobs == EXPECTED_JOBS
    assert sorted(s.name for s in repository.sensor_defs) == EXPECTED_SENSORS
    assert sorted(s.name for s in repository.schedule_defs) == EXPECTED_SCHEDULES


def test_snapshot_checks_are_blocking():
    repository = build_definitions(get_settings()).get_repository_def()
    blocking = {
        key.name
        for key in repository.asset_graph.asset_check_keys
        if repository.asset_graph.get_check_spec(key).blocking
    }
    assert {"schema", "types", "label_leakage", "all_gates_passed"} <= blocking


def test_drift_report_is_hourly_partitioned():
    repository = build_definitions(get_settings()).get_repository_def()
    drift = repository.asset_graph.get(dg.AssetKey(["fraud", "drift_report"]))
    keys = drift.partitions_def.get_partition_keys()
    assert len(keys) == 48
    assert keys[0] == "2013-09-01-00:00"


def test_definitions_do_not_import_evidently():
    # Evidently takes seconds to import; loading the code location must not pay for it. A fresh
    # interpreter tells, because this test session may have imported it already.
    code = "import sys, mlp_orchestration.definitions; print('evidently' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
