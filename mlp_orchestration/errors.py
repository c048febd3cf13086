"""The project's exception tree.

Every error the product raises on purpose derives from ``MlpError`` and carries a category.
The CLI prints the message without a traceback; the scoring service maps the category to an
HTTP status in one handler (see ``HTTP_STATUS``).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCategory(StrEnum):
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    DATA = "data"
    UNAVAILABLE = "unavailable"
    UNAUTHORIZED = "unauthorized"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


HTTP_STATUS: dict[ErrorCategory, int] = {
    ErrorCategory.INVALID_INPUT: 422,
    ErrorCategory.NOT_FOUND: 404,
    ErrorCategory.CONFLICT: 409,
    ErrorCategory.DATA: 422,
    ErrorCategory.UNAVAILABLE: 503,
    ErrorCategory.UNAUTHORIZED: 401,
    ErrorCategory.PAYLOAD_TOO_LARGE: 413,
    ErrorCategory.UNSUPPORTED_MEDIA_TYPE: 415,
}


class MlpError(Exception):
    """Base of every error this project raises on purpose."""

    category: ErrorCategory = ErrorCategory.INVALID_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(MlpError):
    """A model spec is missing, unreadable or invalid."""


class ConfigurationError(MlpError):
    """A setting or command-line value is invalid."""


class DataVerificationError(MlpError):
    """A dataset copy does not match the expected shape or content."""

    category = ErrorCategory.DATA


class DataUnavailableError(MlpError):
    """A dataset is neither in the local cache nor reachable at its public source."""

    category = ErrorCategory.UNAVAILABLE


class NotFoundError(MlpError):
    """A model, version, snapshot or routing config does not exist."""

    category = ErrorCategory.NOT_FOUND


class RoutingConflictError(MlpError):
    """A routing write was based on a version that is no longer the latest."""

    category = ErrorCategory.CONFLICT


class ApprovalError(MlpError):
    """A promotion approval is missing, duplicated or given by the wrong person."""

    category = ErrorCategory.CONFLICT


class ModelLoadError(MlpError):
    """A model version could not be downloaded or loaded for scoring."""

    category = ErrorCategory.UNAVAILABLE
