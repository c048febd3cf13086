"""A routing store that cannot be read or routes nothing: readiness, 503s and rate-limited logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import get_engine, routing_config

from .conftest import Registered
from .helpers import (
    MODEL,
    LiveServer,
    features_of,
    service_settings,
    wait_until,
    write_routing,
)

FOLLOWER_LOGGER = "mlp_orchestration.serving.follower"
STORE_FAILURES = "mlp_routing_store_read_failures_total"
NOT_SQLITE = b"this file is not an SQLite database\n" * 4


def store_failures(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == STORE_FAILURES
    )


def database_path(settings: Settings) -> Path:
    return settings.home_dir / "warehouse.db"


def follower_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == FOLLOWER_LOGGER and r.levelno == level]


@pytest.fixture
def broken_settings(registered: Registered, tmp_path: Path) -> Settings:
    """Settings whose warehouse file (the routing store) exists but is not a database."""
    settings = service_settings(registered.settings, tmp_path)
    database_path(settings).write_bytes(NOT_SQLITE)
    return settings


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-routes"])
def broken_server(
    request: pytest.FixtureRequest, broken_settings: Settings
) -> Iterator[LiveServer]:
    live = LiveServer(broken_settings, fast_path=request.param).start(ready=False)
    wait_until(lambda: store_failures(live) >= 1, timeout_s=30, what="a failed store read")
    yield live
    live.stop()


def test_unreadable_store_logged_once(
    broken_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlp_orchestration")
    live = LiveServer(broken_settings).start(ready=False)
    try:
        # 0.2 s polls: 15 failed reads take about 3 s.
        wait_until(lambda: store_failures(live) >= 15, timeout_s=30, what="15 failed store reads")
    finally:
        live.stop()

    [record] = follower_records(caplog, logging.ERROR)
    message = record.getMessage()
    assert f"cannot read the routing store at sqlite:///{database_path(broken_settings)}" in message
    assert "file is not a database" in message
    assert "serving nothing" in message
    assert not follower_records(caplog, logging.WARNING)
    assert all(r.exc_info is None for r in caplog.records if r.name == FOLLOWER_LOGGER)
    assert "Traceback" not in caplog.text


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target`` in one atomic rename."""
    staged = link.with_name(link.name + ".staged")
    staged.symlink_to(target)
    os.replace(staged, link)


def test_store_error_change_logged_again(
    registered: Registered, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlp_orchestration")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(NOT_SQLITE)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    repaired = service_settings(registered.settings, tmp_path / "repaired")
    write_routing(repaired, champion_version=registered.champion)
    # Closing the pooled connections checkpoints the WAL into the database file.
    get_engine(repaired.warehouse_url).dispose()
    settings = service_settings(registered.settings, tmp_path / "service")
    settings.home_dir.mkdir()
    # The store file is a symbolic link, so no poll can see a missing file between two states.
    path = database_path(settings)
    point_link(path, garbage)

    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(lambda: store_failures(live) >= 3, timeout_s=30, what="3 failed store reads")
        # SQLite cannot open a folder as a database: a second, different failure.
        point_link(path, folder)
        wait_until(
            lambda: len(follower_records(caplog, logging.ERROR)) >= 2,
            timeout_s=30,
            what="the changed store error to be logged",
        )
        failed_before_repair = store_failures(live)
        point_link(path, database_path(repaired))
        wait_until(live.is_ready, timeout_s=60, what="/readyz after the store was repaired")
        body = {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}
        response = httpx.post(f"{live.url}/v1/models/{MODEL}/score", json=body)
    finally:
        live.stop()

    assert response.status_code == 200, response.text
    first, second = follower_records(caplog, logging.ERROR)
    assert "file is not a database" in first.getMessage()
    assert "unable to open database file" in second.getMessage()
    assert "failures so far" in second.getMessage()
    recovered = [r.getMessage() for r in follower_records(caplog, logging.INFO)]
    assert any("readable again after" in message for message in recovered), recovered
    assert failed_before_repair >= 4


def test_unreadable_store_scores_503(broken_server: LiveServer) -> None:
    body = {"entity_id": "1", "features": {"V1": 0.5}}
    url = f"sqlite:///{database_path(broken_server.settings)}"
    for method, path, payload in [
        ("POST", f"/v1/models/{MODEL}/score", body),
        ("POST", f"/v1/models/{MODEL}/score/batch", {"records": [body]}),
        ("POST", "/v1/models/never-routed/score", body),
        ("GET", f"/v1/models/{MODEL}", None),
    ]:
        response = httpx.request(method, broken_server.url + path, json=payload)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["category"] == "unavailable"
        detail = response.json()["detail"]
        assert f"the routing store at {url} cannot be read" in detail
        assert "file is not a database" in detail
        assert "MLP_HOME" in detail
        assert "not served here" not in detail


def test_unreadable_store_not_ready(broken_server: LiveServer) -> None:
    response = httpx.get(f"{broken_server.url}/readyz")
    assert response.status_code == 503
    document = response.json()
    assert document["ready"] is False
    assert document["store_read"] is False
    assert document["models"] == []
    assert "file is not a database" in document["store_error"]
    url = f"sqlite:///{database_path(broken_server.settings)}"
    assert document["reason"].startswith(f"the routing store at {url} has never been read")
    assert "file is not a database" in document["reason"]


def test_empty_store_not_ready(registered: Registered, tmp_path: Path) -> None:
    settings = service_settings(registered.settings, tmp_path)
    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(
            lambda: httpx.get(f"{live.url}/readyz").json()["store_read"],
            timeout_s=30,
            what="the first store read",
        )
        response = httpx.get(f"{live.url}/readyz")
        body = {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}
        scored = httpx.post(f"{live.url}/v1/models/{MODEL}/score", json=body)
        write_routing(settings, champion_version=registered.champion)
        wait_until(live.is_ready, timeout_s=60, what="/readyz once a champion is routed")
    finally:
        live.stop()

    assert response.status_code == 503
    document = response.json()
    assert document["ready"] is False
    assert document["models"] == []
    assert document["store_error"] is None
    assert document["reason"] == (
        f"no model is routed in the routing store at sqlite:///{database_path(settings)}; "
        "promote a champion first or check MLP_HOME / MLP_DATABASE_URL"
    )
    # The store was read, so a model it does not route is unknown rather than unavailable.
    assert scored.status_code == 404
    assert "served models: none yet" in scored.json()["detail"]


def test_store_lost_after_read_keeps_serving(server: LiveServer, registered: Registered) -> None:
    engine = get_engine(server.settings.warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE routing_config"))
    try:
        wait_until(lambda: store_failures(server) >= 2, timeout_s=30, what="failed store reads")
        body = {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}
        scored = httpx.post(f"{server.url}/v1/models/{MODEL}/score", json=body)
        unknown = httpx.post(f"{server.url}/v1/models/other/score", json=body)
        ready = httpx.get(f"{server.url}/readyz")
    finally:
        routing_config.create(engine)

    # The last routing config read keeps serving; only names it cannot check get 503.
    assert scored.status_code == 200, scored.text
    assert scored.json()["model_version"] == registered.champion
    assert unknown.status_code == 503
    assert "no such table: routing_config" in unknown.json()["detail"]
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert "no such table: routing_config" in ready.json()["store_error"]
    for text in (unknown.json()["detail"], ready.json()["store_error"]):
        assert "SELECT" not in text
        assert "[SQL" not in text


def test_store_home_is_a_file_logged_once(
    registered: Registered, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlp_orchestration")
    parent = tmp_path / "not-a-folder"
    parent.write_text("a file where the warehouse folder should be\n")
    settings = service_settings(
        registered.settings, tmp_path, database_url=f"sqlite:///{parent / 'warehouse.db'}"
    )
    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(lambda: store_failures(live) >= 5, timeout_s=30, what="5 failed store reads")
        ready = httpx.get(f"{live.url}/readyz")
    finally:
        live.stop()

    assert ready.status_code == 503
    assert "FileExistsError" in ready.json()["store_error"]
    [record] = follower_records(caplog, logging.ERROR)
    assert str(parent) in record.getMessage()
    assert "Traceback" not in caplog.text


def load_error_of(server: LiveServer) -> dict | None:
    return httpx.get(f"{server.url}/v1/models/{MODEL}").json()["last_load_error"]


def test_load_error_hides_sql_from_clients(
    registered: Registered, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlp_orchestration")
    settings = service_settings(registered.settings, tmp_path)
    write_routing(settings, champion_version=registered.champion)
    engine = get_engine(settings.warehouse_url)
    # latest_versions still reads model and version, but reading the whole config fails.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE routing_config DROP COLUMN evidence"))
    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(lambda: load_error_of(live) is not None, timeout_s=30, what="a load error")
        body = {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}
        scored = httpx.post(f"{live.url}/v1/models/{MODEL}/score", json=body)
        info = httpx.get(f"{live.url}/v1/models/{MODEL}")
    finally:
        live.stop()

    assert scored.status_code == 503
    detail = scored.json()["detail"]
    message = info.json()["last_load_error"]["message"]
    for text in (detail, message):
        assert "OperationalError: no such column: routing_config.evidence" in text
        assert "the service log has the full error" in text
        assert "SELECT" not in text
        assert "[SQL" not in text
        assert "parameters" not in text
        assert "\n" not in text
    logged = [record.getMessage() for record in follower_records(caplog, logging.ERROR)]
    assert logged
    assert all("[SQL: SELECT" in message for message in logged)
