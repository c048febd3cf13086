"""LogSink and build_alert_sink: with no Slack token, alerts go to the log and alert_log."""

from __future__ import annotations

import logging

from mlp_orchestration.alerts import (
    LogSink,
    SendStatus,
    SlackSink,
    alert_counts,
    build_alert_sink,
    promotion_alert,
    slo_alert,
)
from mlp_orchestration.settings import Settings


def _slo():
    return slo_alert(
        "fraud",
        window="2013-09-01 14:00 to 15:00 UTC",
        breaches=[{"metric": "p99_latency_ms", "value": 81.0, "limit": 50}],
        model_version="7",
        arm="champion",
        report_url="http://dagster.test/assets/fraud/serving_health",
    )


def test_build_alert_sink_without_token_logs(tmp_path, engine):
    settings = Settings(MLP_HOME=tmp_path)

    sink = build_alert_sink(settings, engine)

    assert isinstance(sink, LogSink)
    assert sink.channel == "log"


def test_build_alert_sink_with_token_uses_slack(tmp_path, engine, slack):
    settings = Settings(
        MLP_HOME=tmp_path,
        MLP_SLACK_TOKEN="xoxb-test-token",
        MLP_SLACK_CHANNEL="#fraud-alerts",
        MLP_SLACK_BASE_URL=slack.base_url,
    )

    sink = build_alert_sink(settings, engine)

    assert isinstance(sink, SlackSink)
    assert sink.channel == "#fraud-alerts"
    assert sink.base_url == slack.base_url


def test_log_sink_writes_warning_line_and_row(tmp_path, engine, alert_rows, caplog):
    sink = build_alert_sink(Settings(MLP_HOME=tmp_path), engine)

    with caplog.at_level(logging.INFO, logger="mlp_orchestration.alerts"):
        result = sink.send(_slo())

    assert result.status is SendStatus.LOGGED
    assert result.delivered
    [record] = [r for r in caplog.records if r.name == "mlp_orchestration.alerts.log"]
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert line.startswith("ALERT [critical] slo_breach model=fraud")
    assert '"Model version"=7' in line
    assert "p99_latency_ms`: measured 81, limit 50" in line
    assert "\n" not in line
    assert record.alert["kind"] == "slo_breach"
    [row] = alert_rows(engine)
    assert row["status"] == "logged"
    assert row["channel"] == "log"
    assert row["text"] == line
    assert sink.counts["logged"] == 1
    assert alert_counts(engine)["logged"] == 1


def test_log_sink_logs_info_alert_at_info(tmp_path, engine, caplog):
    sink = build_alert_sink(Settings(MLP_HOME=tmp_path), engine)
    alert = promotion_alert(
        "fraud", version="8", previous_version="7", approved_by="alice", evidence={}
    )

    with caplog.at_level(logging.INFO, logger="mlp_orchestration.alerts"):
        sink.send(alert)

    [record] = [r for r in caplog.records if r.name == "mlp_orchestration.alerts.log"]
    assert record.levelno == logging.INFO
    assert '"Approved by"=alice' in record.getMessage()


def test_log_sink_suppresses_duplicate(tmp_path, engine, alert_rows, caplog, clock):
    sink = LogSink(engine, dedup_window_s=900, clock=clock)

    with caplog.at_level(logging.INFO, logger="mlp_orchestration.alerts"):
        first = sink.send(_slo())
        second = sink.send(_slo())

    assert first.status is SendStatus.LOGGED
    assert second.status is SendStatus.SUPPRESSED_DUPLICATE
    alert_lines = [r for r in caplog.records if r.name == "mlp_orchestration.alerts.log"]
    assert len(alert_lines) == 1
    assert [row["status"] for row in alert_rows(engine)] == ["logged", "suppressed_duplicate"]
