"""Hand-written validation of scoring request bodies, with messages that name the fix.

The hot path skips pydantic: the body is parsed with orjson and checked field by field here,
which costs a few microseconds instead of a model parse. ``schemas.py`` documents the same
shapes for OpenAPI.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from mlp_orchestration.serving.errors import InvalidRequestError, PayloadTooLargeError

SCORE_FIELDS = frozenset({"entity_id", "features", "explain", "event_time"})
BATCH_FIELDS = frozenset({"records"})
MAX_ENTITY_ID_CHARS = 128  # the prediction_log.entity_id column length
_SHOWN_CHARS = 80


class ScoreInput(NamedTuple):
    """One validated record to score; features are checked against the model later."""

    entity_id: str
    features: dict[str, Any]
    explain: bool
    event_time: datetime | None


def parse_json(body: bytes) -> Any:
    """Parse a request body as JSON.

    Raises:
        InvalidRequestError: the body is empty, not UTF-8, not JSON or nested too deep.
    """
    if not body:
        raise InvalidRequestError("request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None


def parse_score_request(payload: Any, *, where: str = "request body") -> ScoreInput:
    """Check one score request's shape and return its fields.

    Raises:
        InvalidRequestError: naming the field, the value and the expected form.
    """
    if type(payload) is not dict:
        raise InvalidRequestError(
            f"{where} must be a JSON object with entity_id and features, not {json_type(payload)}"
        )
    if not payload.keys() <= SCORE_FIELDS:
        unknown = ", ".join(shorten(key) for key in sorted(payload.keys() - SCORE_FIELDS))
        raise InvalidRequestError(
            f"{where} has unknown fields: {unknown}; allowed: entity_id, features, explain, "
            "event_time"
        )
    features = payload.get("features")
    if type(features) is not dict:
        raise InvalidRequestError(
            f"{where}: features must be a JSON object of feature name to number or null, "
            f"not {json_type(features)}"
        )
    explain = payload.get("explain", False)
    if type(explain) is not bool:
        raise InvalidRequestError(f"{where}: explain must be true or false, not {shorten(explain)}")
    return ScoreInput(
        entity_id=_entity_id(payload.get("entity_id"), where),
        features=features,
        explain=explain,
        event_time=_event_time(payload.get("event_time"), where),
    )


def parse_batch_request(payload: Any, *, max_records: int) -> list[ScoreInput]:
    """Check a batch request's shape and every record's shape.

    Raises:
        InvalidRequestError: the body or a record has the wrong shape (the record's index is
            named).
        PayloadTooLargeError: the batch has more than ``max_records`` records.
    """
    if type(payload) is not dict or payload.keys() != BATCH_FIELDS:
        raise InvalidRequestError(
            'request body must be a JSON object {"records": [...]} whose records are score '
            f"request objects, not {json_type(payload)}"
            + (f" with fields {', '.join(map(shorten, payload))}" if type(payload) is dict else "")
        )
    records = payload["records"]
    if type(records) is not list or not records:
        raise InvalidRequestError(
            f"records must be a non-empty JSON array of score requests, not {json_type(records)}"
        )
    if len(records) > max_records:
        raise PayloadTooLargeError(
            f"batch has {len(records)} records; the maximum is {max_records} (MLP_MAX_BATCH). "
            "Split it into smaller batches."
        )
    return [parse_score_request(record, where=f"records[{i}]") for i, record in enumerate(records)]


def _entity_id(value: Any, where: str) -> str:
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise InvalidRequestError(
            f"{where}: entity_id must be a string (or an integer), not {json_type(value)}"
        )
    if not value or len(value) > MAX_ENTITY_ID_CHARS or not value.isprintable():
        raise InvalidRequestError(
            f"{where}: entity_id {shorten(value)} is invalid; use 1 to {MAX_ENTITY_ID_CHARS} "
            "printable characters"
        )
    return value


def _event_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidRequestError(
            f"{where}: event_time must be an ISO 8601 string, not {json_type(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequestError(
            f"{where}: event_time {shorten(value)} is not a valid ISO 8601 time; use for "
            "example 2013-09-01T12:30:00Z (UTC when no offset is given)"
        ) from None


def json_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shorten(value: Any) -> str:
    """Return the repr of a value cut to a readable length, for error messages."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}... ({len(text)} characters)"
