"""Request dependencies: the running service and bearer-token auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from mlp_orchestration.serving.auth import check_bearer
from mlp_orchestration.serving.runtime import Runtime

# Documents the scheme in OpenAPI; the check itself is check_bearer, shared with the fast path.
bearer_scheme = HTTPBearer(auto_error=False, description="One of the tokens in MLP_API_TOKENS.")


# Dependencies are async on purpose: FastAPI runs plain functions in a thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_token(
    request: Request, runtime: RuntimeDep, _scheme: Annotated[object, Depends(bearer_scheme)]
) -> None:
    """Reject the request unless it carries one of the configured bearer tokens.

    Raises:
        UnauthorizedError: the token is missing or not configured.
    """
    header = request.headers.get("authorization")
    check_bearer(runtime.tokens, header.encode("latin-1") if header is not None else None)
