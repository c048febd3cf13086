"""Serving health windows and SLO checks from a real prediction log and a loopback /metrics."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, generate_latest

from assets.monitoring import build_monitoring_assets
from mlp_orchestration import keys
from mlp_orchestration.monitoring.health import check_slos, compute_health, scrape_service_metrics
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import get_engine, serving_health_metrics

from .helpers import log_predictions, train_booster

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def rows(ulb_with_time: pd.DataFrame) -> pd.DataFrame:
    return ulb_with_time.iloc[:1_500]


@pytest.fixture(scope="module")
def model(rows: pd.DataFrame) -> NativeModel:
    return NativeModel(train_booster(rows, rounds=10), version="4")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def metrics_server() -> Iterator[str]:
    registry = CollectorRegistry()
    requests = Counter("mlp_scoring_requests", "Requests.", ["model", "status"], registry=registry)
    requests.labels("fraud", "200").inc(980)
    requests.labels("fraud", "500").inc(20)
    body = generate_latest(registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_errors_breach_error_rate_and_availability(
    settings: Settings, rows: pd.DataFrame, model: NativeModel, fraud_spec: ModelSpec
):
    log_predictions(settings, rows.iloc[:980], model, version="4", logged_at=NOW)
    log_predictions(settings, rows.iloc[980:1000], model, version="4", logged_at=NOW, status=500)
    log_predictions(settings, rows.iloc[1000:1100], model, version="5", arm="canary", logged_at=NOW)

    windows = compute_health(fraud_spec, engine=get_engine(settings.warehouse_url))
    results = {
        result.objective: result for result in check_slos(fraud_spec.monitoring.slo, windows)
    }

    champion = next(window for window in windows if window.arm == "champion")
    assert champion.requests == 1000
    assert champion.errors == 20
    assert champion.error_rate == pytest.approx(0.02)
    assert champion.availability == pytest.approx(0.98)
    assert champion.p50_ms <= champion.p95_ms <= champion.p99_ms
    assert results["error_rate"].passed is False
    assert results["availability"].passed is False
    assert [b["arm"] for b in results["error_rate"].breaches] == ["champion"]
    assert results["p99_latency_ms"].passed is True
    assert results["p99_latency_ms"].checked == 2


def test_old_windows_are_not_checked(
    settings: Settings, rows: pd.DataFrame, model: NativeModel, fraud_spec: ModelSpec
):
    log_predictions(settings, rows.iloc[:50], model, version="4", logged_at=NOW, status=500)
    log_predictions(
        settings, rows.iloc[50:150], model, version="4", logged_at=NOW + timedelta(hours=2)
    )

    windows = compute_health(fraud_spec, engine=get_engine(settings.warehouse_url))
    results = check_slos(fraud_spec.monitoring.slo, windows)

    assert len({window.window_start for window in windows}) == 2
    assert all(result.passed for result in results)
    with get_engine(settings.warehouse_url).connect() as conn:
        stored = conn.execute(sa.select(serving_health_metrics)).all()
    assert len(stored) == 2


def test_scrape_reads_totals_of_model(metrics_server: str):
    scrape = scrape_service_metrics(metrics_server, "fraud")

    assert scrape.reachable is True
    assert scrape.samples == {"mlp_scoring_requests_total": 1000.0}


def test_scrape_tolerates_stopped_service():
    url = f"http://127.0.0.1:{_free_port()}"

    scrape = scrape_service_metrics(url, "fraud", timeout_s=0.5)

    assert scrape.reachable is False
    assert scrape.error


def test_asset_checks_fail_on_breach(
    settings: Settings,
    rows: pd.DataFrame,
    model: NativeModel,
    fraud_spec: ModelSpec,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("MLP_SCORING_URL", f"http://127.0.0.1:{_free_port()}")
    log_predictions(settings, rows.iloc[:200], model, version="4", logged_at=NOW)
    log_predictions(settings, rows.iloc[200:210], model, version="4", logged_at=NOW, status=500)
    key = keys.asset_key(fraud_spec.name, keys.SERVING_HEALTH)
    asset = next(a for a in build_monitoring_assets(fraud_spec) if a.key == key)

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset], instance=instance, resources={keys.RESOURCE_KEY: MlpResource()}
        )

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "p99_latency_slo": True,
        "error_rate_slo": False,
        "availability_slo": False,
    }
    metadata = result.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["scoring_service"].value.startswith("unreachable")
