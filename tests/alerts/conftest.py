"""Fixtures for alert tests: a warehouse per test, the local Slack fake and a settable clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.alerts import SlackSink
from mlp_orchestration.warehouse import alert_log, get_engine
from tests.fakes.slack_api import FakeSlackApi

TOKEN = "xoxb-test-token"
CHANNEL = "#risk-model-alerts"


class SettableClock:
    """A clock that returns a fixed time until a test advances it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def engine(tmp_path) -> Engine:
    return get_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(tokens={TOKEN}) as fake:
        yield fake


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def make_slack_sink(engine, slack, clock) -> Callable[..., SlackSink]:
    def make(**overrides) -> SlackSink:
        sink_engine = overrides.pop("engine", engine)
        options = {
            "token": TOKEN,
            "channel": CHANNEL,
            "base_url": slack.base_url,
            "dedup_window_s": 900.0,
            "clock": clock,
        }
        options.update(overrides)
        return SlackSink(sink_engine, **options)

    return make


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A warehouse in a fresh PostgreSQL database, dropped afterwards."""
    url = os.environ.get("MLP_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MLP_TEST_POSTGRES_URL is not set; it names the PostgreSQL server for tests")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"mlp_alerts_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    test_url = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    engine = get_engine(test_url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def alert_rows() -> Callable[[Engine], list[dict]]:
    """Return a reader of every alert_log row as a dict, oldest first."""

    def read(engine: Engine) -> list[dict]:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(alert_log).order_by(alert_log.c.id))
            return [dict(row._mapping) for row in rows]

    return read
