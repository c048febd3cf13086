"""Hand-written validation of scoring request bodies, with messages that name the fix.

The hot path skips pydantic: the body is parsed with orjson and checked field by field here,
which costs a few microseconds instead of a model parse. ``schemas.py`` documents the same
shapes for OpenAPI.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from mlp_orchestration.serving.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

SCORE_FIELDS = frozenset({"entity_id", "features", "explain", "event_time"})
BATCH_FIELDS = frozenset({"records"})
MAX_ENTITY_ID_CHARS = 128  # the prediction_log.entity_id column length
_SHOWN_CHARS = 80
JSON_MEDIA_TYPE = "application/json"
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
# The literals Python's json.dumps and JavaScript's String(number) write for non-finite floats.
_NON_FINITE = re.compile(r"[-+]?(?:NaN|Infinity)(?![A-Za-z0-9_])")
# orjson's message for a number literal beyond the double range (checked with orjson 3.13).
_INFINITE_NUMBER = "number is infinity"


class ScoreInput(NamedTuple):
    """One validated record to score; features are checked against the model later."""

    entity_id: str
    features: dict[str, Any]
    explain: bool
    event_time: datetime | None


def check_content_type(value: str | None) -> None:
    """Accept a JSON content-type or none at all, and reject every other media type.

    JSON means application/json or a structured ``application/*+json`` type (RFC 6839), with no
    charset parameter or charset UTF-8, the only encoding JSON may use between systems
    (RFC 8259). A request without a content-type is parsed as JSON as well, because some
    clients (wrk scripts, ``httpx.post(content=...)``) send none.

    Raises:
        UnsupportedMediaTypeError: naming the media type and what to send instead.
    """
    if value is None or value == JSON_MEDIA_TYPE:
        return
    media_type, _, parameters = value.partition(";")
    media_type = media_type.strip().lower()
    structured_json = media_type.startswith("application/") and media_type.endswith("+json")
    if media_type != JSON_MEDIA_TYPE and not structured_json:
        raise UnsupportedMediaTypeError(
            f"content-type {shorten(value)} is not JSON; send the body as JSON with "
            f"content-type: {JSON_MEDIA_TYPE}"
        )
    for parameter in parameters.split(";"):
        name, _, raw = parameter.partition("=")
        charset = raw.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in _UTF8_NAMES:
            raise UnsupportedMediaTypeError(
                f"content-type {shorten(value)}: charset {charset!r} is not supported; JSON "
                f"must be UTF-8, so send UTF-8 with content-type: {JSON_MEDIA_TYPE}"
            )


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
        raise InvalidRequestError(_invalid_json_message(exc)) from None


def _invalid_json_message(exc: orjson.JSONDecodeError) -> str:
    """Describe a parse error, naming NaN, Infinity and overflowing numbers as non-finite.

    Python's ``json.dumps`` writes NaN and Infinity by default, and a literal such as 1e309
    overflows a double, but JSON (RFC 8259) has no non-finite numbers, so orjson rejects all
    three with a generic message. This runs only after parsing failed.
    """
    fix = "Non-finite numbers are not accepted: send a finite number, or null for a missing value"
    # orjson stops after the sign of -Infinity, so the literal may start one character back.
    start = exc.pos
    if start > 0 and exc.doc[start - 1 : start] in ("+", "-"):
        start -= 1
    literal = _NON_FINITE.match(exc.doc, start)
    if literal is not None:
        column = exc.colno - (exc.pos - start)
        return (
            f"request body is not valid JSON: {literal.group()} at line {exc.lineno} column "
            f"{column} is not a JSON number, because JSON has no NaN or Infinity. {fix}"
        )
    if exc.msg.startswith(_INFINITE_NUMBER):
        return (
            f"request body is not valid JSON: the number at line {exc.lineno} column "
            f"{exc.colno} is too large for a double and would be infinite. {fix}"
        )
    return f"request body is not valid JSON: {exc}"


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
    if type(records) is not list:
        raise InvalidRequestError(
            f"records must be a non-empty JSON array of score requests, not {json_type(records)}"
        )
    if not records:
        raise InvalidRequestError(
            f"records is an empty array; send 1 to {max_records} score requests"
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
    rule = f"use 1 to {MAX_ENTITY_ID_CHARS} printable characters, not all of them whitespace"
    if not value or value.isspace():
        raise InvalidRequestError(f"{where}: entity_id is empty or only whitespace; {rule}")
    if len(value) > MAX_ENTITY_ID_CHARS:
        raise InvalidRequestError(f"{where}: entity_id {shorten(value)} is too long; {rule}")
    if not value.isprintable():
        raise InvalidRequestError(
            f"{where}: entity_id {shorten(value)} contains non-printable characters; {rule}"
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
    except ValueError:
        raise InvalidRequestError(
            f"{where}: event_time {shorten(value)} is not a valid ISO 8601 time; use for "
            "example 2013-09-01T12:30:00Z (UTC when no offset is given)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Python datetimes span years 1 to 9999; an offset can push a valid time outside.
        raise InvalidRequestError(
            f"{where}: event_time {shorten(value)} is out of range after conversion to UTC; "
            "use a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
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
    """Return the repr of a value cut to a readable length, for error messages.

    A cut string states its own length in characters, not the length of its repr.
    """
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    if isinstance(value, str):
        return f"{text[:_SHOWN_CHARS]}... ({len(value)} characters)"
    return f"{text[:_SHOWN_CHARS]}..."
