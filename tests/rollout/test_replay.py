"""Traffic replay through a real scoring service: prediction log rows, then delayed labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.replay import ReplayError, TrafficReplay
from mlp_orchestration.rollout.driver import drive_rollout
from mlp_orchestration.warehouse import label_feedback, prediction_log

from .service import ScoringProcess, free_port, load_transactions

LABEL_DELAY_S = 1.5


@pytest.fixture
def window(rollout_env):
    """300 real transactions loaded into the warehouse; return (start, end, frame)."""
    frame = rollout_env.models.frame.iloc[20_000:20_300]
    load_transactions(rollout_env.settings, frame)
    start = frame["event_time"].iloc[0].to_pydatetime()
    end = frame["event_time"].iloc[-1].to_pydatetime() + timedelta(microseconds=1)
    return start, end, frame


@pytest.fixture
def service(rollout_env, tmp_path):
    process = ScoringProcess(rollout_env.settings, tmp_path / "serve.log").start()
    yield process
    process.stop()


@pytest.mark.parametrize("batch_size", [1, 25])
def test_replay_logs_predictions_then_labels_after_delay(rollout_env, window, service, batch_size):
    start, end, frame = window
    replay = TrafficReplay(
        rollout_env.settings,
        rollout_env.spec,
        start=start,
        end=end,
        rate=400,
        label_delay_s=LABEL_DELAY_S,
        scoring_url=service.url,
        batch_size=batch_size,
        progress=False,
    )
    assert replay.window["transaction_id"].tolist() == frame["transaction_id"].tolist()

    replay.start()
    report = replay.wait()

    assert report.sent == report.scored == len(frame)
    assert report.failed == 0
    assert report.arms == {"champion": len(frame)}
    assert report.model_versions == {rollout_env.champion: len(frame)}
    assert report.labels_delivered == len(frame)
    engine = rollout_env.ctx.engine
    model = rollout_env.spec.name
    with engine.connect() as conn:
        logged = conn.execute(
            sa.select(
                prediction_log.c.entity_id, prediction_log.c.event_time, prediction_log.c.logged_at
            ).where(prediction_log.c.model == model)
        ).all()
        labels = conn.execute(
            sa.select(
                label_feedback.c.entity_id,
                label_feedback.c.label,
                label_feedback.c.event_time,
                label_feedback.c.arrived_at,
            ).where(label_feedback.c.model == model)
        ).all()
    expected = {
        str(t): (e, c)
        for t, e, c in frame[["transaction_id", "event_time", "Class"]].itertuples(index=False)
    }
    assert {row.entity_id for row in logged} == set(expected)
    assert all(row.event_time == expected[row.entity_id][0] for row in logged)
    assert {row.entity_id: row.label for row in labels} == {k: v[1] for k, v in expected.items()}
    scored_at = {row.entity_id: row.logged_at for row in logged}
    waits = [(row.arrived_at - scored_at[row.entity_id]).total_seconds() for row in labels]
    # A label is queued after the response, so it arrives at least the delay after scoring,
    # less the prediction log's own write delay (scoring time is stamped before the write).
    assert min(waits) >= LABEL_DELAY_S - 0.25, min(waits)


def test_replay_flush_delivers_labels_at_once(rollout_env, window, service):
    start, end, frame = window
    replay = TrafficReplay(
        rollout_env.settings,
        rollout_env.spec,
        start=start,
        end=end,
        rate=1000,
        label_delay_s=3600,
        scoring_url=service.url,
        batch_size=50,
        progress=False,
    )
    report = replay.run(flush_labels=True)
    assert report.labels_delivered == len(frame)
    assert report.labels_pending == 0


def test_replay_counts_and_retries_unreachable_service(rollout_env, window):
    start, end, _ = window
    replay = TrafficReplay(
        rollout_env.settings,
        rollout_env.spec,
        start=start,
        end=end,
        rate=1000,
        label_delay_s=0,
        scoring_url=f"http://127.0.0.1:{free_port()}",
        batch_size=10,
        max_retries=2,
        retry_backoff_s=0.01,
        max_consecutive_failures=3,
        progress=False,
    )
    with pytest.raises(ReplayError, match="3 requests in a row failed") as caught:
        replay.run()
    report = caught.value.report
    assert report.sent == report.failed == 30
    assert report.retries == 3 * 2
    assert report.status_counts == {"unreachable": 30}
    assert report.stopped_early is True


def test_replay_rejects_empty_window(rollout_env, window):
    start, _, _ = window
    with pytest.raises(
        ConfigurationError, match="no transactions between .* the table contains event times"
    ):
        TrafficReplay(
            rollout_env.settings,
            rollout_env.spec,
            start=start - timedelta(days=30),
            end=start - timedelta(days=29),
            rate=10,
            label_delay_s=0,
        )


def test_replay_rejects_nonpositive_rate(rollout_env, window):
    start, end, _ = window
    with pytest.raises(ConfigurationError, match="replay rate 0 must be above 0"):
        TrafficReplay(
            rollout_env.settings, rollout_env.spec, start=start, end=end, rate=0, label_delay_s=0
        )


def test_driver_rejects_window_too_small(rollout_env, window):
    start, end, _ = window
    with pytest.raises(ConfigurationError, match="contains 300 transactions, but .* need about"):
        drive_rollout(
            rollout_env.settings,
            rollout_env.spec,
            candidate_version=rollout_env.challenger,
            scoring_url="http://127.0.0.1:9",
            replay_start=start,
            replay_end=end,
            rate=100,
            label_delay_s=1,
            actor="alice",
        )
    assert rollout_env.ctx.store.current(rollout_env.spec.name).version == 1
