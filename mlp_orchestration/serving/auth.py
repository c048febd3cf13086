"""Bearer-token check shared by the FastAPI dependency and the scoring fast path."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from mlp_orchestration.serving.errors import UnauthorizedError


def check_bearer(tokens: Sequence[bytes], authorization: bytes | None) -> None:
    """Raise unless the Authorization header carries one of ``tokens`` (no check when empty).

    Raises:
        UnauthorizedError: the header is missing, not a bearer token, or an unknown token.
    """
    if not tokens:
        return
    scheme, _, credentials = (authorization or b"").strip().partition(b" ")
    credentials = credentials.strip()
    if scheme.lower() != b"bearer" or not credentials:
        raise UnauthorizedError(
            "missing bearer token; send 'Authorization: Bearer <token>' with a token from "
            "MLP_API_TOKENS"
        )
    matched = False
    # Compare against every token with compare_digest, so timing reveals neither which token
    # matched nor how much of one did.
    for token in tokens:
        matched |= hmac.compare_digest(credentials, token)
    if not matched:
        raise UnauthorizedError(
            "bearer token is not valid; use one of the tokens configured in MLP_API_TOKENS"
        )
