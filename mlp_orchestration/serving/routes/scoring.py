"""``POST /v1/models/{model}/score`` and its batch form.

The handlers read the raw body, parse it with orjson and validate it by hand; pydantic models
appear only in the OpenAPI document (see ``schemas.py``).
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from mlp_orchestration.serving import schemas
from mlp_orchestration.serving.deps import RuntimeDep
from mlp_orchestration.serving.routes.body import read_body
from mlp_orchestration.serving.scorer import new_request_id
from mlp_orchestration.serving.validation import (
    parse_batch_request,
    parse_json,
    parse_score_request,
)

router = APIRouter(tags=["scoring"])

JSON = "application/json"
# Batches of this many records or fewer are scored on the event loop; larger ones in a thread,
# so one big batch does not stall every other connection of the worker.
_INLINE_BATCH = 32
_ERRORS = (401, 404, 413, 422, 503)


@router.post(
    "/models/{model}/score",
    name="score",
    summary="Score one transaction",
    openapi_extra=schemas.request_body(schemas.ScoreRequest),
    responses=schemas.responses(schemas.ScoreResponse, *_ERRORS),
)
async def score(model: str, request: Request, runtime: RuntimeDep) -> Response:
    """Return the fraud probability from the champion or, for a sticky share, the canary."""
    started = time.perf_counter()
    route = runtime.follower.state.route(model)
    payload = parse_json(await read_body(request, runtime.settings.max_body_bytes))
    item = parse_score_request(payload)
    request_id = new_request_id()
    result = runtime.scorer.score(model, route, item, request_id=request_id, started=started)
    runtime.metrics.count_request(model, "score", 200)
    return Response(orjson.dumps(result), media_type=JSON, headers={"x-request-id": request_id})


@router.post(
    "/models/{model}/score/batch",
    name="score_batch",
    summary="Score several transactions",
    openapi_extra=schemas.request_body(schemas.BatchRequest),
    responses=schemas.responses(schemas.BatchResponse, *_ERRORS),
)
async def score_batch(model: str, request: Request, runtime: RuntimeDep) -> Response:
    """Score up to MLP_MAX_BATCH records; any invalid record rejects the whole batch."""
    started = time.perf_counter()
    route = runtime.follower.state.route(model)
    payload = parse_json(await read_body(request, runtime.settings.max_body_bytes))
    items = parse_batch_request(payload, max_records=runtime.settings.max_batch)
    request_id = new_request_id()
    scorer = runtime.scorer
    if len(items) <= _INLINE_BATCH:
        results = scorer.score_batch(model, route, items, request_id=request_id, started=started)
    else:
        results = await run_in_threadpool(
            scorer.score_batch, model, route, items, request_id=request_id, started=started
        )
    runtime.metrics.count_request(model, "score_batch", 200)
    body = orjson.dumps({"results": results})
    return Response(body, media_type=JSON, headers={"x-request-id": request_id})
