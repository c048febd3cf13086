"""De-duplication through the warehouse alert_log table: window, failures, threads, processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from mlp_orchestration.alerts import (
    AlertKind,
    SendStatus,
    alert_counts,
    build_alert_sink,
    run_failure_alert,
)
from mlp_orchestration.alerts.dedup import AlertLog
from mlp_orchestration.settings import Settings


def _failure(run_id: str = "run-1"):
    return run_failure_alert(
        "fraud_retrain_job",
        run_id=run_id,
        error="Execution of run failed.",
        run_url=f"http://dagster.test/runs/{run_id}",
    )


def test_duplicate_suppressed_within_window(make_slack_sink, slack, clock, engine, alert_rows):
    sink = make_slack_sink(dedup_window_s=600)

    first = sink.send(_failure())
    clock.advance(599)
    second = sink.send(_failure())

    assert first.status is SendStatus.SENT
    assert second.status is SendStatus.SUPPRESSED_DUPLICATE
    assert second.fingerprint == first.fingerprint
    assert len(slack.posted()) == 1
    assert [row["status"] for row in alert_rows(engine)] == ["sent", "suppressed_duplicate"]
    assert sink.counts["suppressed_duplicate"] == 1


def test_duplicate_sent_again_after_window(make_slack_sink, slack, clock, engine, alert_rows):
    sink = make_slack_sink(dedup_window_s=600)

    sink.send(_failure())
    clock.advance(601)
    again = sink.send(_failure())

    assert again.status is SendStatus.SENT
    assert len(slack.posted()) == 2
    assert [row["status"] for row in alert_rows(engine)] == ["sent", "sent"]


def test_different_alert_not_suppressed(make_slack_sink, slack):
    sink = make_slack_sink()

    sink.send(_failure("run-1"))
    other = sink.send(_failure("run-2"))

    assert other.status is SendStatus.SENT
    assert len(slack.posted()) == 2


def test_zero_window_turns_dedup_off(make_slack_sink, slack):
    sink = make_slack_sink(dedup_window_s=0)

    results = [sink.send(_failure()) for _ in range(2)]

    assert [result.status for result in results] == [SendStatus.SENT, SendStatus.SENT]


def test_failed_send_does_not_suppress_retry(make_slack_sink, slack, engine, alert_rows):
    slack.fail_with("invalid_auth")
    sink = make_slack_sink()

    failed = sink.send(_failure())
    retried = sink.send(_failure())

    assert failed.status is SendStatus.FAILED
    assert retried.status is SendStatus.SENT
    assert [row["status"] for row in alert_rows(engine)] == ["failed", "sent"]


def test_dedup_is_per_channel(make_slack_sink, slack):
    make_slack_sink(channel="#risk-a").send(_failure())

    other_channel = make_slack_sink(channel="#risk-b").send(_failure())

    assert other_channel.status is SendStatus.SENT


def test_dedup_holds_across_sinks(make_slack_sink, slack):
    make_slack_sink().send(_failure())

    from_new_sink = make_slack_sink().send(_failure())

    assert from_new_sink.status is SendStatus.SUPPRESSED_DUPLICATE
    assert len(slack.posted()) == 1


@pytest.fixture
def slow_claims(monkeypatch) -> None:
    """Widen the race window: pause between a claim's duplicate lookup and its commit."""
    lookup = AlertLog._has_recent

    def lookup_then_pause(self, *args, **kwargs):
        found = lookup(self, *args, **kwargs)
        time.sleep(0.05)
        return found

    monkeypatch.setattr(AlertLog, "_has_recent", lookup_then_pause)


def _send_concurrently(sinks, alert) -> list[SendStatus]:
    barrier = threading.Barrier(len(sinks))
    statuses: list[SendStatus] = []
    errors: list[BaseException] = []

    def send(sink) -> None:
        barrier.wait()
        try:
            statuses.append(sink.send(alert).status)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(sink,)) for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return statuses


def test_concurrent_identical_alerts_sent_once_sqlite(make_slack_sink, slack, engine, slow_claims):
    sinks = [make_slack_sink() for _ in range(6)]

    statuses = _send_concurrently(sinks, _failure())

    assert statuses.count(SendStatus.SENT) == 1
    assert statuses.count(SendStatus.SUPPRESSED_DUPLICATE) == 5
    assert len(slack.posted()) == 1
    assert alert_counts(engine)["sent"] == 1


@pytest.mark.postgres
def test_concurrent_identical_alerts_sent_once_postgres(
    make_slack_sink, slack, postgres_engine, slow_claims
):
    sinks = [make_slack_sink(engine=postgres_engine) for _ in range(6)]

    statuses = _send_concurrently(sinks, _failure())

    assert statuses.count(SendStatus.SENT) == 1
    assert statuses.count(SendStatus.SUPPRESSED_DUPLICATE) == 5
    assert len(slack.posted()) == 1
    assert alert_counts(postgres_engine)["suppressed_duplicate"] == 5


_SEND_IN_CHILD = """
from mlp_orchestration.alerts import build_alert_sink, run_failure_alert
from mlp_orchestration.settings import get_settings
from mlp_orchestration.warehouse import get_engine

settings = get_settings()
sink = build_alert_sink(settings, get_engine(settings.warehouse_url))
alert = run_failure_alert(
    "fraud_retrain_job",
    run_id="run-1",
    error="Execution of run failed.",
    run_url="http://dagster.test/runs/run-1",
)
print(sink.send(alert).status.value)
"""


def test_dedup_holds_across_processes(tmp_path, slack):
    settings = Settings(
        MLP_HOME=tmp_path, MLP_SLACK_TOKEN="xoxb-test-token", MLP_SLACK_BASE_URL=slack.base_url
    )
    from mlp_orchestration.warehouse import get_engine

    sink = build_alert_sink(settings, get_engine(settings.warehouse_url))
    env = {
        **os.environ,
        "MLP_HOME": str(tmp_path),
        "MLP_SLACK_TOKEN": "xoxb-test-token",
        "MLP_SLACK_BASE_URL": slack.base_url,
    }

    first = sink.send(_failure())
    child = subprocess.run(
        [sys.executable, "-c", _SEND_IN_CHILD], env=env, capture_output=True, text=True
    )

    assert first.status is SendStatus.SENT
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "suppressed_duplicate"
    assert len(slack.posted()) == 1


def test_alert_counts_filters_by_time_model_and_kind(make_slack_sink, slack, clock, engine):
    sink = make_slack_sink()
    start = clock()
    sink.send(_failure("run-1"))
    sink.send(_failure("run-1"))
    clock.advance(60)
    sink.send(_failure("run-2"))

    since_later = alert_counts(engine, since=start + timedelta(seconds=30))

    assert alert_counts(engine) == {
        "pending": 0,
        "sent": 2,
        "logged": 0,
        "suppressed_duplicate": 1,
        "failed": 0,
    }
    assert since_later["sent"] == 1
    assert since_later["suppressed_duplicate"] == 0
    assert alert_counts(engine, model="fraud")["sent"] == 0
    assert alert_counts(engine, kinds=[AlertKind.RUN_FAILED])["sent"] == 2
    assert alert_counts(engine, kinds=[AlertKind.DRIFT_DETECTED])["sent"] == 0
