"""Routing changes: atomic reloads under load, broken versions, canary split, Redis refresh."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
import redis

from mlp_orchestration.routing.store import REDIS_CHANNEL
from mlp_orchestration.serving.canary import CANARY, CHAMPION, canary_salt, choose_arm
from mlp_orchestration.serving.client import ScoringClient, ScoringServiceError
from mlp_orchestration.settings import Settings

from .conftest import Registered
from .helpers import (
    MODEL,
    LiveServer,
    features_of,
    predict_exact,
    service_settings,
    wait_until,
    write_routing,
)


def model_info(server: LiveServer) -> dict:
    return httpx.get(f"{server.url}/v1/models/{MODEL}").json()


def test_reload_under_load_never_fails(server: LiveServer, registered: Registered) -> None:
    rows = [features_of(registered.frame.iloc[i]) for i in range(50)]
    outcomes: list[list[tuple[int, str | None, int | None]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(slot: int) -> None:
        with httpx.Client(base_url=server.url) as client:
            i = 0
            while not stop.is_set():
                body = {"entity_id": f"{slot}-{i}", "features": rows[i % len(rows)]}
                response = client.post(f"/v1/models/{MODEL}/score", json=body)
                document = response.json() if response.status_code == 200 else {}
                outcomes[slot].append(
                    (
                        response.status_code,
                        document.get("model_version"),
                        document.get("routing_version"),
                    )
                )
                i += 1

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    write_routing(server.settings, champion_version=registered.challenger)
    wait_until(
        lambda: any(seen and seen[-1][1] == registered.challenger for seen in outcomes),
        timeout_s=30,
        what="responses from the new version",
    )
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()

    every = [outcome for seen in outcomes for outcome in seen]
    assert Counter(status for status, _, _ in every) == Counter({200: len(every)})
    for seen in outcomes:
        versions = [version for _, version, _ in seen]
        switch = versions.index(registered.challenger)
        # Each client sees the old version, then only the new one: no mix after the swap.
        assert set(versions[:switch]) == {registered.champion}
        assert set(versions[switch:]) == {registered.challenger}
        assert {routing for _, version, routing in seen if version == registered.challenger} == {2}


def test_new_version_scores_like_its_booster(server: LiveServer, registered: Registered) -> None:
    write_routing(server.settings, champion_version=registered.challenger)
    wait_until(
        lambda: model_info(server)["routing"]["version"] == 2, timeout_s=30, what="routing v2"
    )
    features = features_of(registered.frame.iloc[77])
    with ScoringClient(server.url) as client:
        result = client.score(MODEL, "77", features)
    assert result["model_version"] == registered.challenger
    assert result["score"] == predict_exact(registered.boosters[registered.challenger], features)


def test_broken_version_keeps_last_good(server: LiveServer, registered: Registered) -> None:
    write_routing(server.settings, champion_version=registered.corrupt)
    wait_until(
        lambda: model_info(server)["last_load_error"] is not None,
        timeout_s=30,
        what="the load error",
    )
    info = model_info(server)
    assert info["routing"]["version"] == 1
    assert info["routing"]["champion_version"] == registered.champion
    assert info["ready"] is True
    assert info["last_load_error"]["routing_version"] == 2
    assert f"version {registered.corrupt}" in info["last_load_error"]["message"]
    assert "cannot load LightGBM model" in info["last_load_error"]["message"]

    with ScoringClient(server.url) as client:
        result = client.score(MODEL, "1", features_of(registered.frame.iloc[1]))
    assert result["model_version"] == registered.champion
    assert result["routing_version"] == 1
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mlp_routing_reload_failures_total{model="fraud"}' in metrics
    assert 'mlp_routing_load_error{model="fraud"} 1.0' in metrics

    write_routing(server.settings, champion_version=registered.challenger)
    wait_until(
        lambda: model_info(server)["routing"]["version"] == 3, timeout_s=30, what="routing v3"
    )
    assert model_info(server)["last_load_error"] is None
    assert 'mlp_routing_load_error{model="fraud"} 0.0' in httpx.get(f"{server.url}/metrics").text


def test_first_config_broken_not_ready(registered: Registered, tmp_path) -> None:
    settings = service_settings(registered.settings, tmp_path)
    write_routing(settings, champion_version=registered.corrupt)
    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(
            lambda: model_info(live)["last_load_error"] is not None,
            timeout_s=30,
            what="the load error",
        )
        ready = httpx.get(f"{live.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["waiting_for"] == [MODEL]
        assert model_info(live)["ready"] is False
        with (
            ScoringClient(live.url) as client,
            pytest.raises(
                ScoringServiceError, match="routed but not loaded yet.*cannot load LightGBM model"
            ) as caught,
        ):
            client.score(MODEL, "1", features_of(registered.frame.iloc[1]))
        assert caught.value.status == 503
    finally:
        live.stop()


def test_canary_split_follows_hash(server: LiveServer, registered: Registered) -> None:
    write_routing(
        server.settings,
        champion_version=registered.champion,
        canary_version=registered.challenger,
        canary_share=0.3,
    )
    wait_until(
        lambda: model_info(server)["routing"]["version"] == 2, timeout_s=30, what="routing v2"
    )
    salt = canary_salt(MODEL, registered.challenger)
    features = features_of(registered.frame.iloc[3])
    expected_version = {CHAMPION: registered.champion, CANARY: registered.challenger}
    arms = {}
    with ScoringClient(server.url) as client:
        records = [{"entity_id": f"card-{i}", "features": features} for i in range(400)]
        for start in range(0, 400, 50):
            for result in client.score_batch(MODEL, records[start : start + 50]):
                arms[result["entity_id"]] = result["arm"]
                assert result["model_version"] == expected_version[result["arm"]]
        for entity in list(arms)[:40]:
            assert client.score(MODEL, entity, features)["arm"] == arms[entity]
    for entity, arm in arms.items():
        assert arm == choose_arm(entity, salt=salt, share=0.3)
    share = sum(arm == CANARY for arm in arms.values()) / len(arms)
    assert 0.2 < share < 0.4


@pytest.mark.redis
def test_redis_publish_refreshes_at_once(registered: Registered, tmp_path, redis_url) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)

    def subscribers() -> int:
        return dict(client.pubsub_numsub(REDIS_CHANNEL))[REDIS_CHANNEL.encode()]

    before = subscribers()
    # A 5-minute poll interval: only the Redis message can explain a refresh within seconds.
    settings: Settings = service_settings(
        registered.settings, tmp_path, redis_url=redis_url, routing_poll_s=300
    )
    write_routing(settings, champion_version=registered.champion)
    live = LiveServer(settings).start()
    try:
        wait_until(lambda: subscribers() > before, timeout_s=15, what="the Redis subscription")
        write_routing(settings, champion_version=registered.challenger)
        wait_until(
            lambda: model_info(live)["routing"]["version"] == 2,
            timeout_s=15,
            what="the Redis-triggered refresh",
        )
    finally:
        live.stop()
