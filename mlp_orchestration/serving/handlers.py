"""Score request handling from raw body bytes to response bytes.

Both entry points call these functions: the ASGI fast path (``fastpath.py``) that serves the
scoring routes in production, and the FastAPI routes that document them and serve them when the
fast path is off.
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool

from mlp_orchestration.serving.runtime import Runtime
from mlp_orchestration.serving.scorer import new_request_id
from mlp_orchestration.serving.validation import (
    parse_batch_request,
    parse_json,
    parse_score_request,
)

SCORE = "score"
SCORE_BATCH = "score_batch"
# Batches of up to this many records are scored on the event loop. Larger ones go to a thread,
# so one big batch does not stall every other connection of the worker.
_INLINE_BATCH = 32


def score(runtime: Runtime, model: str, body: bytes, *, started: float) -> tuple[bytes, str]:
    """Score one record; return the JSON response and the request id.

    Raises:
        MlpError: a category the error handler maps to 404, 413, 422 or 503.
    """
    route = runtime.follower.state.route(model)
    item = parse_score_request(parse_json(body))
    request_id = new_request_id()
    result = runtime.scorer.score(model, route, item, request_id=request_id, started=started)
    runtime.metrics.count_request(model, SCORE, 200)
    return orjson.dumps(result), request_id


async def score_batch(
    runtime: Runtime, model: str, body: bytes, *, started: float
) -> tuple[bytes, str]:
    """Score a batch; return the JSON response and the batch's request id."""
    route = runtime.follower.state.route(model)
    items = parse_batch_request(parse_json(body), max_records=runtime.settings.max_batch)
    request_id = new_request_id()
    scorer = runtime.scorer
    if len(items) <= _INLINE_BATCH:
        results = scorer.score_batch(model, route, items, request_id=request_id, started=started)
    else:
        results = await run_in_threadpool(
            scorer.score_batch, model, route, items, request_id=request_id, started=started
        )
    runtime.metrics.count_request(model, SCORE_BATCH, 200)
    return orjson.dumps({"results": results}), request_id
