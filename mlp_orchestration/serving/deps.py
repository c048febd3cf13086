"""Request dependencies: the running service and bearer-token auth."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlp_orchestration.serving.errors import UnauthorizedError
from mlp_orchestration.serving.runtime import Runtime

# auto_error=False: the handler below raises the project's error, so 401 bodies look alike.
bearer_scheme = HTTPBearer(auto_error=False, description="One of the tokens in MLP_API_TOKENS.")


# Dependencies are async on purpose: FastAPI runs plain functions in a thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_token(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Reject the request unless it carries one of the configured bearer tokens.

    Raises:
        UnauthorizedError: the token is missing or not configured.
    """
    if not runtime.tokens:
        return
    if credentials is None:
        raise UnauthorizedError(
            "missing bearer token; send 'Authorization: Bearer <token>' with a token from "
            "MLP_API_TOKENS"
        )
    presented = credentials.credentials.encode()
    matched = False
    # Compare against every token with compare_digest, so timing reveals neither which token
    # matched nor how much of one did.
    for token in runtime.tokens:
        matched |= hmac.compare_digest(presented, token)
    if not matched:
        raise UnauthorizedError(
            "bearer token is not valid; use one of the tokens configured in MLP_API_TOKENS"
        )
