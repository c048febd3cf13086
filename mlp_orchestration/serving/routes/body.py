"""Reading a request body with a size limit."""

from __future__ import annotations

from fastapi import Request

from mlp_orchestration.serving.errors import PayloadTooLargeError


async def read_body(request: Request, limit: int) -> bytes:
    """Return the raw body, rejecting it as soon as it is known to exceed ``limit`` bytes.

    Raises:
        PayloadTooLargeError: the declared or received length is over the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    if declared is not None:
        return await request.body()
    # Chunked upload: the length is known only while reading.
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(received, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body of {size} bytes or more is over the limit of {limit} bytes "
        "(MLP_MAX_BODY_BYTES); send fewer records per request"
    )
