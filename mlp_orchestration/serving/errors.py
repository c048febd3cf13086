"""Errors the scoring service raises on a request; the app maps each category to a status."""

from __future__ import annotations

from mlp_orchestration.errors import ErrorCategory, MlpError


class InvalidRequestError(MlpError):
    """A request body is not valid JSON or does not have the documented shape."""

    category = ErrorCategory.INVALID_INPUT


class PayloadTooLargeError(MlpError):
    """A request body or batch is larger than the configured limit."""

    category = ErrorCategory.PAYLOAD_TOO_LARGE


class UnauthorizedError(MlpError):
    """A /v1 request has no bearer token or one that is not configured."""

    category = ErrorCategory.UNAUTHORIZED


class UnsupportedMediaTypeError(MlpError):
    """A request body is declared with a media type other than JSON."""

    category = ErrorCategory.UNSUPPORTED_MEDIA_TYPE


class ModelUnavailableError(MlpError):
    """A model cannot be scored yet: its config has not loaded or the routing store is unread."""

    category = ErrorCategory.UNAVAILABLE
