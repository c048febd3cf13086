"""Bearer tokens guard every /v1 route when MLP_API_TOKENS is set; health and metrics stay open."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from mlp_orchestration.serving.client import ScoringClient, ScoringServiceError

from .conftest import Registered
from .helpers import MODEL, LiveServer, features_of, service_settings, write_routing

TOKENS = ("token-alpha-5f2c", "token-beta-91ad")


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi-routes"])
def guarded(
    request: pytest.FixtureRequest, registered: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("auth")
    settings = service_settings(registered.settings, home, api_tokens=",".join(TOKENS))
    write_routing(settings, champion_version=registered.champion)
    live = LiveServer(settings, fast_path=request.param).start()
    yield live
    live.stop()


def score_body(registered: Registered) -> dict:
    return {"entity_id": "1", "features": features_of(registered.frame.iloc[1])}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKENS[0]}", "Bearer", f"Bearer {TOKENS[0]}x"],
)
def test_v1_rejects_without_valid_token(
    guarded: LiveServer, registered: Registered, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    for method, path, body in [
        ("POST", f"/v1/models/{MODEL}/score", score_body(registered)),
        ("POST", f"/v1/models/{MODEL}/score/batch", {"records": [score_body(registered)]}),
        ("GET", f"/v1/models/{MODEL}", None),
    ]:
        response = httpx.request(method, guarded.url + path, json=body, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["category"] == "unauthorized"
        assert "MLP_API_TOKENS" in response.json()["detail"]


@pytest.mark.parametrize("token", TOKENS)
def test_v1_accepts_each_token(guarded: LiveServer, registered: Registered, token: str) -> None:
    with ScoringClient(guarded.url, token=token) as client:
        assert client.score(MODEL, "1", score_body(registered)["features"])["model"] == MODEL
        assert client.model_info(MODEL)["ready"] is True


def test_unknown_model_needs_token_first(guarded: LiveServer, registered: Registered) -> None:
    response = httpx.post(f"{guarded.url}/v1/models/nope/score", json=score_body(registered))
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_open(guarded: LiveServer, path: str) -> None:
    assert httpx.get(guarded.url + path).status_code == 200


def test_tokens_never_logged(
    registered: Registered, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = service_settings(registered.settings, tmp_path, api_tokens=",".join(TOKENS))
    write_routing(settings, champion_version=registered.champion)
    live = LiveServer(settings).start()
    try:
        with ScoringClient(live.url, token=TOKENS[1]) as client:
            client.score(MODEL, "1", score_body(registered)["features"])
        with (
            ScoringClient(live.url, token="guess") as client,
            pytest.raises(ScoringServiceError, match="bearer token is not valid"),
        ):
            client.score(MODEL, "1", score_body(registered)["features"])
    finally:
        live.stop()
    assert "scoring service started" in caplog.text
    for secret in (*TOKENS, "guess"):
        assert secret not in caplog.text


def test_auth_off_needs_no_token(server: LiveServer, registered: Registered) -> None:
    response = httpx.post(f"{server.url}/v1/models/{MODEL}/score", json=score_body(registered))
    assert response.status_code == 200
