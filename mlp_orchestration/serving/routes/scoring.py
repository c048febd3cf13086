"""``POST /v1/models/{model}/score`` and its batch form.

The handlers read the raw body and call ``handlers.py``, which parses it with orjson and
validates it by hand. Pydantic models appear only in the OpenAPI document (``schemas.py``).
With the fast path on (the default), ``fastpath.py`` serves these two routes before FastAPI
routing, so these functions then only document them.

The body must be JSON: content-type application/json or an ``application/*+json`` type, with
no charset or charset UTF-8. A request without a content-type is parsed as JSON too. Any other
media type gets 415 before the body is read.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from mlp_orchestration.serving import handlers, schemas
from mlp_orchestration.serving.routes.body import read_body
from mlp_orchestration.serving.runtime import Runtime
from mlp_orchestration.serving.validation import check_content_type

router = APIRouter(tags=["scoring"])

JSON = "application/json"
_ERRORS = (401, 404, 413, 415, 422, 503)
# The handlers take only the Request: declaring the path parameter or the runtime dependency
# makes FastAPI validate and resolve them on every call. The path parameter is documented here.
_MODEL_PARAMETER = {
    "parameters": [
        {
            "name": "model",
            "in": "path",
            "required": True,
            "description": "Registered model name, e.g. fraud.",
            "schema": {"type": "string"},
        }
    ]
}


@router.post(
    "/models/{model}/score",
    name=handlers.SCORE,
    summary="Score one transaction",
    openapi_extra={**schemas.request_body(schemas.ScoreRequest), **_MODEL_PARAMETER},
    responses=schemas.responses(schemas.ScoreResponse, *_ERRORS),
)
async def score(request: Request) -> Response:
    """Return the fraud probability from the champion or, for a sticky share, the canary.

    Send the body as JSON (content-type application/json); other media types get 415.
    """
    started = time.perf_counter()
    model: str = request.path_params["model"]
    runtime: Runtime = request.app.state.runtime
    runtime.follower.state.route(model)
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request, runtime.settings.max_body_bytes)
    content, request_id = handlers.score(runtime, model, body, started=started)
    return Response(content, media_type=JSON, headers={"x-request-id": request_id})


@router.post(
    "/models/{model}/score/batch",
    name=handlers.SCORE_BATCH,
    summary="Score several transactions",
    openapi_extra={**schemas.request_body(schemas.BatchRequest), **_MODEL_PARAMETER},
    responses=schemas.responses(schemas.BatchResponse, *_ERRORS),
)
async def score_batch(request: Request) -> Response:
    """Score up to MLP_MAX_BATCH records; any invalid record rejects the whole batch.

    Send the body as JSON (content-type application/json); other media types get 415.
    """
    started = time.perf_counter()
    model: str = request.path_params["model"]
    runtime: Runtime = request.app.state.runtime
    runtime.follower.state.route(model)
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request, runtime.settings.max_body_bytes)
    content, request_id = await handlers.score_batch(runtime, model, body, started=started)
    return Response(content, media_type=JSON, headers={"x-request-id": request_id})
