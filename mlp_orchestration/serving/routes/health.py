"""Liveness, readiness and Prometheus metrics; open even when bearer tokens are required."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from mlp_orchestration.serving.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Response:
    """Return 200 while the process serves HTTP."""
    return Response(b'{"status":"alive"}', media_type="application/json")


@router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready"}})
async def readyz(runtime: RuntimeDep) -> Response:
    """Return 200 once every routed model has a loaded routing config, else 503."""
    state = runtime.follower.state
    waiting = sorted(model for model in state.routed if model not in state.routes)
    body = {
        "ready": state.ready(),
        "store_read": state.store_read,
        "models": sorted(state.routes),
        "waiting_for": waiting,
    }
    return Response(
        orjson.dumps(body), status_code=200 if body["ready"] else 503, media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    """Return every metric in the Prometheus text format."""
    text, content_type = runtime.metrics.render()
    return Response(text, media_type=content_type)
