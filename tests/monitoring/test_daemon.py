"""The real dagster-daemon runs the retrain sensor and launches the retrain run it requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mlp_orchestration.settings import PROJECT_DIR, get_settings
from mlp_orchestration.spec import ModelSpec

from .test_retrain_sensor import report

LOCATION = Path(__file__).with_name("daemon_location.py")
TIMEOUT_S = 120


def _write_home(dagster_home: Path) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def _write_workspace(folder: Path) -> Path:
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_file:\n"
        f"      relative_path: {LOCATION}\n"
        f"      working_directory: {PROJECT_DIR}\n"
        "      location_name: monitoring_daemon_test\n"
    )
    return workspace


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
def test_daemon_launches_retrain_run(tmp_path: Path, fraud_spec: ModelSpec):
    dagster_home = tmp_path / "dagster-home"
    _write_home(dagster_home)
    workspace = _write_workspace(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MLP_HOME": str(get_settings().home)}
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    for hour in range(2):
        report(instance, fraud_spec, hour)
    last = report(instance, fraud_spec, 2)

    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "daemon.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run = None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and daemon.poll() is None:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="fraud_retrain_job"))
            run = runs[0] if runs else None
            if run is not None and run.is_finished:
                break
            time.sleep(1)
    finally:
        _stop(daemon)
        instance.dispose()

    log = (tmp_path / "daemon.log").read_text()
    assert run is not None, f"no retrain run within {TIMEOUT_S}s; daemon log:\n{log[-3000:]}"
    assert run.status == dg.DagsterRunStatus.SUCCESS, log[-3000:]
    assert run.tags["dagster/run_key"] == f"fraud-drift-2013-09-02-02:00-event-{last}"
    assert run.tags["dagster/sensor_name"] == "fraud_retrain_on_drift_sensor"
    assert run.tags["mlp/drift_partition"] == "2013-09-02-02:00"
    snapshot_config = run.run_config["ops"]["fraud__feature_snapshot"]["config"]
    assert snapshot_config == {"as_of": "2013-09-02T03:00:00+00:00"}
