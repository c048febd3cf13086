"""The one mapping from errors to HTTP responses, used by the app's handlers and the fast path."""

from __future__ import annotations

import orjson

from mlp_orchestration.errors import HTTP_STATUS, ErrorCategory, MlpError

INTERNAL = "internal"
JSON = b"application/json"


def error_status(exc: MlpError) -> int:
    """Return the HTTP status of a project error's category."""
    return HTTP_STATUS.get(exc.category, 500)


def error_headers(exc: MlpError) -> dict[str, str]:
    if exc.category is ErrorCategory.UNAUTHORIZED:
        return {"www-authenticate": "Bearer"}
    return {}


def error_body(category: str, message: str) -> bytes:
    return orjson.dumps({"detail": message, "category": category})
