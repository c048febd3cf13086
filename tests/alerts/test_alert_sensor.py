"""The run-failure sensor against a real Dagster instance, a failed run and the Slack fake."""

from __future__ import annotations

import dagster as dg
import pytest

from mlp_orchestration.alerts import alert_counts
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.warehouse import get_engine
from sensors.alerts import RUN_FAILURE_ALERT_SENSOR, build_alert_sensors


@dg.op
def score_window() -> None:
    raise ValueError("feature V14 missing from the scoring log window")


@dg.op
def healthy_step() -> int:
    return 1


@dg.job
def failing_job() -> None:
    score_window()


@dg.job
def passing_job() -> None:
    healthy_step()


@pytest.fixture
def alert_env(monkeypatch, tmp_path, slack) -> None:
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLP_SLACK_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("MLP_SLACK_BASE_URL", slack.base_url)
    monkeypatch.setenv("MLP_DAGSTER_UI_URL", "http://dagster.test:3000")
    monkeypatch.delenv("MLP_DATABASE_URL", raising=False)


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"mlp": MlpResource()}
    )
    return sensor.evaluate_tick(context)


def test_run_failure_sensor_sends_alert(alert_env, slack):
    [sensor] = build_alert_sensors()

    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, None)
        failed = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        passing_job.execute_in_process(instance=instance)
        second = _tick(sensor, instance, first.cursor)
        third = _tick(sensor, instance, second.cursor)

    assert sensor.name == RUN_FAILURE_ALERT_SENSOR
    assert not failed.success
    run_id = failed.run_id
    [body] = slack.posted()
    assert "Dagster run of failing_job failed" in body["text"]
    assert run_id in body["text"]
    assert "ValueError: feature V14 missing from the scoring log window" in body["text"]
    assert f"<http://dagster.test:3000/runs/{run_id}|Dagster run>" in body["text"]
    fields = [item["text"] for block in body["blocks"] for item in block.get("fields", [])]
    assert "*Failed steps*\nscore_window" in fields
    assert f"*Run id*\n{run_id}" in fields
    [reaction] = second.dagster_run_reactions
    assert reaction.dagster_run.run_id == run_id
    assert reaction.error is None
    assert third.dagster_run_reactions == []
    assert len(slack.calls("chat.postMessage")) == 1


def test_run_failure_sensor_reports_undelivered_alert(alert_env, slack, tmp_path):
    [sensor] = build_alert_sensors()
    slack.fail_with("token_revoked")

    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, None)
        failed = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        second = _tick(sensor, instance, first.cursor)

    [reaction] = second.dagster_run_reactions
    assert reaction.error is not None
    assert f"the failure alert for run {failed.run_id} of failing_job was not delivered" in (
        reaction.error.to_string()
    )
    assert "token_revoked" in reaction.error.to_string()
    engine = get_engine(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}")
    assert alert_counts(engine)["failed"] == 1
