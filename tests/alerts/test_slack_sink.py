"""SlackSink against the local Slack Web API fake: delivery, retries, rejected tokens, limits."""

from __future__ import annotations

import logging
import socket

import pytest

from mlp_orchestration.alerts import (
    Alert,
    AlertKind,
    SendStatus,
    Severity,
    alert_counts,
    gate_failure_alert,
)
from mlp_orchestration.alerts.blocks import (
    MAX_BLOCKS,
    MAX_FIELD_CHARS,
    MAX_HEADER_CHARS,
    MAX_SECTION_TEXT_CHARS,
    MAX_TEXT_CHARS,
    TRUNCATION_MARKER,
)
from mlp_orchestration.errors import ConfigurationError
from tests.fakes.slack_api import block_errors

TOKEN = "xoxb-test-token"


def _gate_alert() -> Alert:
    return gate_failure_alert(
        "fraud",
        version="7",
        failures=[
            {
                "check": "performance.min_pr_auc",
                "value": 0.512,
                "threshold": 0.6,
                "message": "PR-AUC below the floor",
            }
        ],
        run_url="http://dagster.test/runs/abc-123",
        version_url="http://mlflow.test/#/models/fraud/versions/7",
    )


def _block_texts(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(item["text"] for item in block.get("fields", []))
        parts.extend(item["text"] for item in block.get("elements", []))
    return "\n".join(parts)


def test_slack_sink_sends_blocks_and_text(make_slack_sink, slack, engine, alert_rows):
    sink = make_slack_sink()

    result = sink.send(_gate_alert())

    assert result.status is SendStatus.SENT
    assert result.delivered
    assert result.ts is not None
    [request] = slack.calls("chat.postMessage")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"].startswith("application/json")
    body = request.body
    assert body["channel"] == "#risk-model-alerts"
    assert "fraud version 7 failed 1 gate check" in body["text"]
    assert "performance.min_pr_auc" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    texts = _block_texts(body["blocks"])
    assert "*Candidate version*\n7" in texts
    assert "measured 0.512, threshold 0.6" in texts
    assert "<http://dagster.test/runs/abc-123|Dagster run>" in texts
    assert "<http://mlflow.test/#/models/fraud/versions/7|MLflow version>" in texts
    assert body["unfurl_links"] is False
    [row] = alert_rows(engine)
    assert row["status"] == "sent"
    assert row["kind"] == "gate_failed"
    assert row["model"] == "fraud"
    assert row["fingerprint"] == result.fingerprint
    assert sink.counts["sent"] == 1


def test_slack_sink_escapes_control_characters(make_slack_sink, slack):
    alert = Alert(
        kind=AlertKind.RUN_FAILED,
        title="run failed",
        severity=Severity.CRITICAL,
        fields={"Error": "<class 'ValueError'> & more"},
    )

    make_slack_sink().send(alert)

    [body] = slack.posted()
    assert "&lt;class 'ValueError'&gt; &amp; more" in _block_texts(body["blocks"])
    assert "&lt;class 'ValueError'&gt; &amp; more" in body["text"]


def test_slack_sink_waits_out_rate_limit(make_slack_sink, slack, engine, alert_rows):
    slack.rate_limit(calls=1, retry_after=1)

    result = make_slack_sink().send(_gate_alert())

    assert result.status is SendStatus.SENT
    first, second = slack.calls("chat.postMessage")
    assert first.status == 429
    assert second.status == 200
    assert second.received_at - first.received_at >= 1.0
    assert [row["status"] for row in alert_rows(engine)] == ["sent"]


def test_slack_sink_rate_limit_retries_exhausted(make_slack_sink, slack, engine):
    slack.rate_limit(calls=3, retry_after=0)
    sink = make_slack_sink(max_retries=2)

    result = sink.send(_gate_alert())

    assert result.status is SendStatus.FAILED
    assert result.error.startswith("ratelimited (HTTP 429)")
    assert len(slack.calls("chat.postMessage")) == 3
    assert sink.counts["failed"] == 1


def test_slack_sink_rejects_long_retry_after(make_slack_sink, slack):
    slack.rate_limit(calls=1, retry_after=120)

    result = make_slack_sink(max_retry_wait_s=30).send(_gate_alert())

    assert result.status is SendStatus.FAILED
    assert "ratelimited" in result.error
    assert len(slack.calls("chat.postMessage")) == 1


@pytest.mark.parametrize(
    "error", ["invalid_auth", "token_revoked", "not_authed", "account_inactive"]
)
def test_slack_sink_counts_auth_error_as_failed(
    make_slack_sink, slack, engine, alert_rows, caplog, error
):
    slack.fail_with(error)
    sink = make_slack_sink()

    with caplog.at_level(logging.ERROR, logger="mlp_orchestration.alerts"):
        result = sink.send(_gate_alert())

    assert result.status is SendStatus.FAILED
    assert not result.delivered
    assert result.ts is None
    assert error in result.error
    assert "MLP_SLACK_TOKEN" in result.error
    assert sink.counts == {"sent": 0, "logged": 0, "suppressed_duplicate": 0, "failed": 1}
    [row] = alert_rows(engine)
    assert row["status"] == "failed"
    assert error in row["error"]
    assert any(error in record.getMessage() for record in caplog.records)
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert alert_counts(engine)["failed"] == 1


def test_slack_sink_fails_with_unknown_token(make_slack_sink, slack, engine, alert_rows):
    result = make_slack_sink(token="xoxb-not-issued").send(_gate_alert())

    assert result.status is SendStatus.FAILED
    assert result.error.startswith("invalid_auth (HTTP 200)")
    assert slack.posted() == []
    assert alert_rows(engine)[0]["status"] == "failed"


def test_slack_sink_fails_after_token_revoked(make_slack_sink, slack, engine, alert_rows):
    sink = make_slack_sink()
    first = sink.send(_gate_alert())
    slack.revoke(TOKEN)

    second = sink.send(
        gate_failure_alert(
            "fraud",
            version="8",
            failures=[{"check": "bias.gap", "value": 0.2, "threshold": 0.1}],
            run_url=None,
        )
    )

    assert first.status is SendStatus.SENT
    assert second.status is SendStatus.FAILED
    assert second.error.startswith("token_revoked")
    assert [row["status"] for row in alert_rows(engine)] == ["sent", "failed"]
    assert sink.counts["sent"] == 1
    assert sink.counts["failed"] == 1


def test_slack_sink_retries_server_error(make_slack_sink, slack):
    slack.server_error(calls=1)

    result = make_slack_sink().send(_gate_alert())

    assert result.status is SendStatus.SENT
    assert [r.status for r in slack.calls("chat.postMessage")] == [500, 200]


def test_slack_sink_fails_on_persistent_server_error(make_slack_sink, slack, engine, alert_rows):
    slack.server_error(calls=5)

    result = make_slack_sink(max_retries=1).send(_gate_alert())

    assert result.status is SendStatus.FAILED
    assert "HTTP 500" in result.error
    assert len(slack.calls("chat.postMessage")) == 2
    assert alert_rows(engine)[0]["status"] == "failed"


def test_slack_sink_fails_when_api_unreachable(make_slack_sink, engine, alert_rows):
    # A port that was free a moment ago and has no listener: connections are refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = make_slack_sink(base_url=f"http://127.0.0.1:{port}/api/", max_retries=1).send(
        _gate_alert()
    )

    assert result.status is SendStatus.FAILED
    assert result.error.startswith(f"cannot reach the Slack API at http://127.0.0.1:{port}/api/")
    assert alert_rows(engine)[0]["status"] == "failed"


def test_slack_sink_truncates_oversized_message(make_slack_sink, slack):
    alert = Alert(
        kind=AlertKind.RUN_FAILED,
        model="fraud",
        title="A very long title " * 20,
        severity=Severity.CRITICAL,
        fields={f"Field {index}": "x" * 2500 for index in range(80)},
        links={f"Link {index}": f"http://dagster.test/runs/{index}" for index in range(40)},
        body="Traceback line\n" * 10_000,
    )

    result = make_slack_sink().send(alert)

    assert result.status is SendStatus.SENT
    assert result.truncated
    [body] = slack.posted()
    blocks = body["blocks"]
    assert block_errors(blocks) == []
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER_CHARS
    for block in blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT_CHARS
        for item in block.get("fields", []):
            assert len(item["text"]) <= MAX_FIELD_CHARS
    assert len(body["text"]) <= MAX_TEXT_CHARS
    assert TRUNCATION_MARKER in body["text"]
    assert TRUNCATION_MARKER in _block_texts(blocks)
    assert TRUNCATION_MARKER in blocks[0]["text"]["text"]
    assert len(_block_texts(blocks)) <= 12_000


def test_slack_sink_leaves_small_message_whole(make_slack_sink, slack):
    result = make_slack_sink().send(_gate_alert())

    assert not result.truncated
    [body] = slack.posted()
    assert TRUNCATION_MARKER not in body["text"]
    assert TRUNCATION_MARKER not in _block_texts(body["blocks"])


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"token": " "}, "MLP_SLACK_TOKEN is set but empty"),
        ({"channel": ""}, "MLP_SLACK_CHANNEL is empty"),
        ({"base_url": "slack.com/api"}, "MLP_SLACK_BASE_URL 'slack.com/api' is not an http"),
    ],
)
def test_slack_sink_rejects_bad_configuration(make_slack_sink, overrides, match):
    with pytest.raises(ConfigurationError, match=match):
        make_slack_sink(**overrides)
