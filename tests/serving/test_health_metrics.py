"""Liveness, readiness, Prometheus metrics and the model info route."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Registered
from .helpers import FEATURES, MODEL, LiveServer, features_of


def samples(server: LiveServer) -> list:
    text = httpx.get(f"{server.url}/metrics").text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(server: LiveServer, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in samples(server)
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_healthz_alive(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_lists_models(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "reason": None,
        "store_read": True,
        "store_error": None,
        "models": [MODEL],
        "waiting_for": [],
    }


def test_model_info_describes_versions(server: LiveServer, registered: Registered) -> None:
    info = httpx.get(f"{server.url}/v1/models/{MODEL}").json()
    assert info["model"] == MODEL
    assert info["ready"] is True
    assert info["routing"]["version"] == 1
    assert info["routing"]["champion_version"] == registered.champion
    assert info["routing"]["actor"] == "tests"
    assert info["last_load_error"] is None
    [loaded] = info["loaded_versions"]
    assert loaded["version"] == registered.champion
    assert loaded["arm"] == "champion"
    assert loaded["decision_threshold"] == 0.5
    assert loaded["feature_names"] == FEATURES


def test_metrics_count_requests_and_errors(server: LiveServer, registered: Registered) -> None:
    body = {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}
    with httpx.Client(base_url=server.url) as client:
        for _ in range(7):
            assert client.post(f"/v1/models/{MODEL}/score", json=body).status_code == 200
        assert client.post(f"/v1/models/{MODEL}/score", content=b"{").status_code == 422
        assert client.post("/v1/models/random-name-123/score", json=body).status_code == 404

    latency = dict(model=MODEL, version=registered.champion, arm="champion")
    assert value(server, "mlp_scoring_request_duration_seconds_count", **latency) == 7
    assert value(server, "mlp_scoring_request_duration_seconds_sum", **latency) > 0
    assert value(server, "mlp_scoring_requests_total", model=MODEL, status="200") == 7
    assert value(server, "mlp_scoring_requests_total", model=MODEL, status="422") == 1
    assert value(server, "mlp_scoring_errors_total", model=MODEL, category="invalid_input") == 1
    # Names that are not routed are counted under "unknown", so paths cannot add series.
    assert value(server, "mlp_scoring_errors_total", model="unknown", category="not_found") == 1
    names = {sample.labels.get("model") for sample in samples(server)}
    assert "random-name-123" not in names
    assert value(server, "mlp_routing_config_version", model=MODEL) == 1
    assert value(server, "mlp_prediction_log_dropped_total") == 0
    assert value(server, "mlp_routing_reload_failures_total", model=MODEL) == 0
