"""The FastAPI app of the scoring service.

``create_app`` builds the app for one process; uvicorn calls it once per worker (``mlp serve``
passes it as a factory). The lifespan starts the routing follower, the shadow worker and the
prediction log writer, and on shutdown (SIGTERM or SIGINT) stops them in that order, so every
scored record is written before the process exits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlp_orchestration.errors import ErrorCategory, MlpError
from mlp_orchestration.serving import schemas
from mlp_orchestration.serving.deps import require_token
from mlp_orchestration.serving.fastpath import ScoringFastPath
from mlp_orchestration.serving.metrics import UNKNOWN_MODEL
from mlp_orchestration.serving.responses import INTERNAL, error_body, error_headers, error_status
from mlp_orchestration.serving.routes import health, models, scoring
from mlp_orchestration.serving.runtime import Runtime
from mlp_orchestration.settings import Settings, get_settings

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    """Build the scoring service app; settings default to the environment's.

    Args:
        fast_path: serve the two scoring routes in ``ScoringFastPath`` before FastAPI routing
            (same handlers and errors, less overhead); False routes them through FastAPI.
    """
    runtime = Runtime(settings or get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="mlp-orchestration scoring service",
        summary="Fraud scores from the routed champion, canary and shadow model versions.",
        version="1",
        lifespan=lifespan,
        # Metrics go to Prometheus. FastAPI's built-in OpenTelemetry layer would otherwise
        # check on every request for a configured provider, which costs about as much as
        # validating the body.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    dependencies = [Depends(require_token)] if runtime.tokens else []
    app.include_router(scoring.router, prefix=API_PREFIX, dependencies=dependencies)
    app.include_router(models.router, prefix=API_PREFIX, dependencies=dependencies)
    app.include_router(health.router)
    if fast_path:
        app.add_middleware(ScoringFastPath, runtime=runtime)
    app.add_exception_handler(MlpError, _handle_mlp_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(Exception, _handle_unexpected_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _handle_mlp_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlpError)
    status = error_status(exc)
    return _error(request, status, exc.category.value, exc.message, error_headers(exc))


def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
    return _error(request, 422, ErrorCategory.INVALID_INPUT.value, "; ".join(parts))


def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    category = ErrorCategory.NOT_FOUND.value if exc.status_code == 404 else "http"
    return _error(request, exc.status_code, category, str(exc.detail), exc.headers)


def _handle_unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, INTERNAL, "internal error; the service log has the details")


def _error(
    request: Request,
    status: int,
    category: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime: Runtime = request.app.state.runtime
    route = request.scope.get("route")
    endpoint = getattr(route, "name", None) or "other"
    model = request.path_params.get("model", UNKNOWN_MODEL)
    if model not in runtime.follower.state.routed:
        # Only routed names become label values, so odd paths cannot grow the metric series.
        model = UNKNOWN_MODEL
    runtime.metrics.count_error(model, endpoint, category, status)
    return Response(
        error_body(category, message),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """Build the OpenAPI document once, adding the documentation-only request models."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in schemas.DOC_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, schema)
    app.openapi_schema = document
    return document
