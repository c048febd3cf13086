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
    """Return 200 when the service can score, else 503 with the reason.

    Ready means the routing store was read at least once, routes at least one model, and every
    routed model has a loaded routing config. ``store_error`` is the last store read's error:
    while the store fails after a successful read, the routes read before keep serving and the
    service stays ready.
    """
    state = runtime.follower.state
    reason = state.not_ready_reason()
    body = {
        "ready": reason is None,
        "reason": reason,
        "store_read": state.store_read,
        "store_error": state.store_error,
        "models": sorted(state.routes),
        "waiting_for": state.waiting_for(),
    }
    return Response(
        orjson.dumps(body),
        status_code=200 if reason is None else 503,
        media_type="application/json",
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    """Return every metric in the Prometheus text format."""
    text, content_type = runtime.metrics.render()
    return Response(text, media_type=content_type)
