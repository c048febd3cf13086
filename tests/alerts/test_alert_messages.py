"""Alert builders, the Alert model's validation and dedup key, and Block Kit rendering limits."""

from __future__ import annotations

import pytest

from mlp_orchestration.alerts import (
    Alert,
    AlertError,
    AlertKind,
    Severity,
    dagster_asset_url,
    dagster_run_url,
    drift_alert,
    format_value,
    gate_failure_alert,
    promotion_alert,
    render_message,
    retrain_alert,
    rollout_alert,
    run_failure_alert,
    slo_alert,
)
from mlp_orchestration.alerts.blocks import (
    MAX_BLOCKS,
    MAX_BLOCKS_TEXT_CHARS,
    TRUNCATION_MARKER,
    clip,
    fit_blocks,
)
from mlp_orchestration.settings import Settings
from tests.fakes.slack_api import block_errors


def _drift(**overrides):
    options = {
        "partition": "2013-09-01-14:00",
        "drifted_columns": {"V3": 0.12, "Amount": 0.45, "V14": 0.31},
        "drift_share": 0.1034,
        "report_url": "/srv/mlp/reports/fraud/drift/2013-09-01-14.html",
        "action": "retrain run requested",
        "thresholds": {"V3": 0.1, "Amount": 0.2, "V14": 0.1},
    }
    options.update(overrides)
    return drift_alert("fraud", **options)


def test_drift_alert_ranks_columns_by_score():
    alert = _drift()

    assert alert.kind is AlertKind.DRIFT_DETECTED
    assert alert.fields["Drift share"] == "10.3% of columns"
    assert alert.fields["Drifted columns"] == "3"
    assert alert.fields["Action"] == "retrain run requested"
    assert alert.body.index("`Amount` 0.45 (threshold 0.2)") < alert.body.index("`V14` 0.31")
    assert alert.body.index("`V14` 0.31") < alert.body.index("`V3` 0.12")
    assert alert.links["Drift report"] == "/srv/mlp/reports/fraud/drift/2013-09-01-14.html"


def test_drift_alert_truncates_column_list():
    columns = {f"V{index}": index / 100 for index in range(1, 29)}

    alert = _drift(drifted_columns=columns, top_n=5)

    assert "`V28` 0.28" in alert.body
    assert "`V23`" not in alert.body
    assert "… and 23 more" in alert.body


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"drift_share": 1.5}, "drift_share 1.5 is outside 0 to 1"),
        ({"drifted_columns": {"V1": "high"}}, "drift score of column 'V1' 'high' is not a number"),
        ({"drifted_columns": {"V1": float("nan")}}, "drift score of column 'V1' is NaN"),
    ],
)
def test_drift_alert_rejects_bad_figures(overrides, match):
    with pytest.raises(AlertError, match=match):
        _drift(**overrides)


def test_gate_failure_alert_names_check_value_threshold():
    alert = gate_failure_alert(
        "fraud",
        version="7",
        failures=[
            {"check": "performance.min_pr_auc", "value": 0.512, "threshold": 0.6},
            {"check": "bias.max_gap", "value": 0.21, "threshold": 0.1, "message": "night"},
        ],
        run_url="http://dagster.test/runs/r1",
    )

    assert alert.title == "fraud version 7 failed 2 gate checks"
    assert alert.fields["Failed checks"] == "performance.min_pr_auc, bias.max_gap"
    assert "• *performance.min_pr_auc*: measured 0.512, threshold 0.6" in alert.body
    assert "• *bias.max_gap*: measured 0.21, threshold 0.1 — night" in alert.body
    assert alert.links == {"Dagster run": "http://dagster.test/runs/r1"}


@pytest.mark.parametrize(
    ("failures", "match"),
    [
        ([], "got no failures"),
        ([{"value": 0.5, "threshold": 0.6}], "gate failure #0 .* has no 'check'"),
    ],
)
def test_gate_failure_alert_rejects_bad_failures(failures, match):
    with pytest.raises(AlertError, match=match):
        gate_failure_alert("fraud", version="7", failures=failures, run_url=None)


def test_rollout_alert_stage_change_is_info():
    alert = rollout_alert(
        "fraud",
        from_stage=0.05,
        to_stage=0.25,
        candidate_version="8",
        metrics={"error_rate_increase": 0.001},
        routing_version=11,
        champion_version="7",
    )

    assert alert.kind is AlertKind.ROLLOUT_STAGE
    assert alert.severity is Severity.INFO
    assert alert.title == "fraud version 8: rollout 5% of traffic → 25% of traffic"
    assert alert.fields["Routing config version"] == "11"


def test_rollout_alert_with_breach_is_rollback():
    alert = rollout_alert(
        "fraud",
        from_stage=0.25,
        to_stage="rolled back",
        candidate_version="8",
        metrics={"p99_latency_ratio": 3.41},
        breaches=[{"metric": "max_p99_latency_ratio", "value": 3.41, "limit": 3.0}],
        routing_version=12,
        links={"Dagster run": "http://dagster.test/runs/r2", "Evidence": None},
    )

    assert alert.kind is AlertKind.ROLLBACK
    assert alert.severity is Severity.CRITICAL
    assert "max_p99_latency_ratio 3.41 breached limit 3" in alert.title
    assert "• `max_p99_latency_ratio`: measured 3.41, limit 3" in alert.body
    assert alert.links == {"Dagster run": "http://dagster.test/runs/r2"}


def test_rollout_alert_rejects_breach_without_metric():
    with pytest.raises(AlertError, match="rollout breach #0 .* has no 'metric'"):
        rollout_alert(
            "fraud",
            from_stage="shadow",
            to_stage=0.05,
            candidate_version="8",
            metrics={},
            breaches=[{"value": 1.0}],
            routing_version=None,
        )


def test_promotion_alert_names_approver_and_evidence():
    alert = promotion_alert(
        "fraud",
        version="8",
        previous_version=None,
        approved_by="alice",
        evidence={"Gate report": "http://dagster.test/assets/fraud/gate_report"},
        version_url="http://mlflow.test/#/models/fraud/versions/8",
    )

    assert alert.kind is AlertKind.PROMOTION
    assert alert.fields["Approved by"] == "alice"
    assert alert.fields["Previous champion"] == "none"
    assert list(alert.links) == ["MLflow version", "Gate report"]


@pytest.mark.parametrize(
    ("outcome", "kind", "severity"),
    [
        (None, AlertKind.RETRAIN_STARTED, Severity.INFO),
        ("challenger", AlertKind.RETRAIN_FINISHED, Severity.INFO),
        ("gate_failed", AlertKind.RETRAIN_FINISHED, Severity.WARNING),
        ("failed", AlertKind.RETRAIN_FINISHED, Severity.CRITICAL),
    ],
)
def test_retrain_alert_kind_follows_outcome(outcome, kind, severity):
    alert = retrain_alert(
        "fraud",
        run_id="r3",
        run_url="http://dagster.test/runs/r3",
        trigger="drift in 3 consecutive windows",
        outcome=outcome,
        candidate_version="9",
    )

    assert alert.kind is kind
    assert alert.severity is severity


def test_retrain_alert_rejects_unknown_outcome():
    with pytest.raises(AlertError, match="retrain outcome 'done' is not one of"):
        retrain_alert("fraud", run_id="r3", run_url=None, trigger="schedule", outcome="done")


def test_run_failure_alert_lists_failed_steps():
    alert = run_failure_alert(
        "fraud_retrain_job",
        run_id="r4",
        error="Execution of run failed.",
        run_url="http://dagster.test/runs/r4",
        failed_steps={"fraud__candidate_model": "ValueError: " + "x" * 1000},
    )

    assert alert.severity is Severity.CRITICAL
    assert alert.model is None
    assert alert.fields["Failed steps"] == "fraud__candidate_model"
    assert "• `fraud__candidate_model`: ValueError: x" in alert.body
    assert len(alert.body) < 700


def test_slo_alert_requires_breaches():
    with pytest.raises(AlertError, match="got no breaches"):
        slo_alert("fraud", window="14:00 to 15:00", breaches=[])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": AlertKind.DRIFT_DETECTED, "title": "  "}, "title must be non-empty"),
        ({"kind": "drifted", "title": "x"}, "alert kind 'drifted' is not one of"),
        ({"kind": AlertKind.PROMOTION, "title": "x", "severity": "urgent"}, "severity 'urgent'"),
        ({"kind": AlertKind.PROMOTION, "title": "x", "links": {"Run": ""}}, "link 'Run' has an"),
        ({"kind": AlertKind.PROMOTION, "title": "x", "fields": {"": 1}}, "empty or non-text label"),
    ],
)
def test_alert_rejects_invalid_content(kwargs, match):
    with pytest.raises(AlertError, match=match):
        Alert(**kwargs)


def test_dedup_key_depends_on_content_only():
    first = Alert(kind=AlertKind.SLO_BREACH, model="fraud", title="SLO", fields={"p99": 81.0})
    same = Alert(kind="slo_breach", model="fraud", title="SLO", fields={"p99": "81"})
    changed = Alert(kind=AlertKind.SLO_BREACH, model="fraud", title="SLO", fields={"p99": 82.0})
    other_model = Alert(kind=AlertKind.SLO_BREACH, model="fraud2", title="SLO", fields={"p99": 81})

    assert first.dedup_key == same.dedup_key
    assert first.dedup_key != changed.dedup_key
    assert first.dedup_key != other_model.dedup_key
    assert len(first.dedup_key) == 64


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "n/a"), (True, "yes"), (12345, "12,345"), (0.51234, "0.5123"), (12345.67, "12,345.7")],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_clip_keeps_limit_and_counts_cut():
    text = "a" * 5000

    clipped = clip(text, 3000)

    assert len(clipped) <= 3000
    assert f"{TRUNCATION_MARKER} " in clipped
    omitted = int(clipped.rsplit(TRUNCATION_MARKER, 1)[1].split()[0].replace(",", ""))
    assert omitted == 5000 - clipped.index(" …")


def test_clip_never_splits_link_or_entity():
    text = "x" * 2960 + "<http://dagster.test/runs/123|Dagster run> &amp; more" * 10

    clipped = clip(text, 3000)

    prefix = clipped.split(" …")[0]
    assert prefix.count("<") == prefix.count(">")
    assert not prefix.endswith("&")


def test_fit_blocks_respects_count_and_text_budget():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 400}}] * 80

    fitted = fit_blocks(blocks)

    assert len(fitted) <= MAX_BLOCKS
    sizes = [
        len(block["elements"][0]["text"]) if "elements" in block else len(block["text"]["text"])
        for block in fitted
    ]
    assert sum(sizes) <= MAX_BLOCKS_TEXT_CHARS
    assert fitted[-1]["type"] == "context"
    assert "more blocks omitted" in fitted[-1]["elements"][0]["text"]
    assert block_errors(fitted) == []


def test_render_message_fits_every_builder():
    alerts = [
        _drift(),
        run_failure_alert("job", run_id="r", error="boom", run_url=None),
        slo_alert("fraud", window="w", breaches=[{"metric": "m", "value": 1, "limit": 0}]),
    ]

    for alert in alerts:
        message = render_message(alert)
        assert block_errors(message.blocks) == []
        assert not message.truncated
        assert message.text


def test_dagster_links_quote_parts():
    settings = Settings(MLP_DAGSTER_UI_URL="http://dagster.test:3000/")

    assert dagster_run_url(settings, "abc-1") == "http://dagster.test:3000/runs/abc-1"
    assert (
        dagster_asset_url(settings, ["fraud", "drift report"])
        == "http://dagster.test:3000/assets/fraud/drift%20report"
    )


def test_clip_keeps_ampersand_inside_link():
    text = "x" * 2900 + "<http://dagster.test/runs?a=1&b=2|Dagster run> " + "y" * 200

    clipped = clip(text, 3000)

    assert "<http://dagster.test/runs?a=1&b=2|Dagster run>" in clipped


def test_slo_alert_names_version_and_arm():
    alert = slo_alert(
        "fraud",
        window="2013-09-01T14:00:00+00:00",
        breaches=[
            {
                "metric": "error_rate",
                "value": 0.03,
                "limit": 0.01,
                "model_version": "8",
                "arm": "canary",
            }
        ],
    )

    assert "• `error_rate`: measured 0.03, limit 0.01 (version 8, canary)" in alert.body


def test_alert_is_hashable_by_content():
    first = Alert(kind=AlertKind.PROMOTION, title="promoted", fields={"Version": 8})
    same = Alert(kind=AlertKind.PROMOTION, title="promoted", fields={"Version": "8"})

    assert len({first, same}) == 1
