"""Shadow scoring runs off the request path and logs its scores with arm "shadow"."""

from __future__ import annotations

import threading
import time

import httpx
import sqlalchemy as sa

from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.shadow import ShadowJob, ShadowScorer
from mlp_orchestration.warehouse import get_engine, prediction_log, utcnow

from .conftest import Registered
from .helpers import MODEL, LiveServer, features_of, predict_exact, wait_until, write_routing


def job(number: int) -> ShadowJob:
    return ShadowJob(
        request_id=f"r{number}",
        model=MODEL,
        entity_id=str(number),
        features={},
        event_time=utcnow(),
        routing_version=1,
        versions=(),
    )


def test_slow_shadow_never_blocks_submit() -> None:
    metrics = ServingMetrics()
    handled: list[str] = []
    release = threading.Event()

    def slow_handler(item: ShadowJob) -> None:
        release.wait(10)
        handled.append(item.request_id)

    scorer = ShadowScorer(queue_size=5, metrics=metrics, handler=slow_handler)
    scorer.start()
    started = time.perf_counter()
    accepted = [scorer.submit(job(i)) for i in range(50)]
    elapsed = time.perf_counter() - started
    release.set()
    scorer.stop()

    # 50 submits while the worker is stuck: each returns at once instead of waiting.
    assert elapsed < 0.5
    assert accepted.count(True) in (5, 6)  # the worker may hold one job besides the queue
    assert scorer.dropped == accepted.count(False)
    assert metrics.shadow_dropped.labels(MODEL)._value.get() == scorer.dropped
    assert handled == [f"r{i}" for i, ok in enumerate(accepted) if ok]


def test_failing_handler_keeps_worker_alive() -> None:
    handled: list[str] = []

    def handler(item: ShadowJob) -> None:
        if item.request_id == "r0":
            raise RuntimeError("boom")
        handled.append(item.request_id)

    scorer = ShadowScorer(queue_size=10, metrics=ServingMetrics(), handler=handler)
    scorer.start()
    for i in range(3):
        scorer.submit(job(i))
    scorer.stop()
    assert handled == ["r1", "r2"]


def test_shadow_scores_logged(server: LiveServer, registered: Registered) -> None:
    write_routing(
        server.settings,
        champion_version=registered.champion,
        shadow_versions=(registered.shadow,),
    )
    wait_until(
        lambda: httpx.get(f"{server.url}/v1/models/{MODEL}").json()["routing"]["version"] == 2,
        timeout_s=30,
        what="routing v2",
    )
    features = {}
    request_ids = {}
    with httpx.Client(base_url=server.url) as client:
        for i in range(20):
            features[str(i)] = features_of(registered.frame.iloc[100 + i])
            body = {"entity_id": str(i), "features": features[str(i)]}
            document = client.post(f"/v1/models/{MODEL}/score", json=body).json()
            assert document["arm"] == "champion"
            request_ids[document["request_id"]] = str(i)

    engine = get_engine(server.settings.warehouse_url)
    query = sa.select(prediction_log).where(prediction_log.c.request_id.in_(list(request_ids)))

    def rows() -> list:
        with engine.connect() as conn:
            return list(conn.execute(query))

    wait_until(lambda: len(rows()) == 40, timeout_s=15, what="champion and shadow rows")
    shadow_rows = [row for row in rows() if row.arm == "shadow"]
    assert len(shadow_rows) == 20
    booster = registered.boosters[registered.shadow]
    for row in shadow_rows:
        assert row.model_version == registered.shadow
        assert row.routing_version == 2
        assert row.status == 200
        assert row.entity_id == request_ids[row.request_id]
        assert row.score == predict_exact(booster, features[row.entity_id])
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'mlp_shadow_scored_total{{model="fraud",version="{registered.shadow}"}} 20.0' in metrics
