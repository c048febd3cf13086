"""The scoring routes over HTTP, with and without the ASGI fast path in front of FastAPI."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from mlp_orchestration.warehouse import get_engine, prediction_log

from .conftest import Registered
from .helpers import (
    FEATURES,
    MODEL,
    LiveServer,
    features_of,
    logit,
    predict_exact,
    service_settings,
    wait_until,
    write_routing,
)

MAX_BODY = 64 * 1024
MAX_BATCH = 50
SCORE_PATH = f"/v1/models/{MODEL}/score"
BATCH_PATH = f"/v1/models/{MODEL}/score/batch"


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi-routes"])
def api(
    request: pytest.FixtureRequest, registered: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("api")
    settings = service_settings(
        registered.settings, home, max_body_bytes=MAX_BODY, max_batch=MAX_BATCH
    )
    write_routing(settings, champion_version=registered.champion)
    live = LiveServer(settings, fast_path=request.param).start()
    yield live
    live.stop()


def body_for(registered: Registered, index: int, **extra: object) -> dict:
    row = registered.frame.iloc[index]
    return {"entity_id": str(index), "features": features_of(row), **extra}


def test_score_equals_booster_predict(api: LiveServer, registered: Registered) -> None:
    booster = registered.boosters[registered.champion]
    for index in range(0, 2000, 97):
        body = body_for(registered, index)
        response = httpx.post(api.url + SCORE_PATH, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["score"] == predict_exact(booster, body["features"])


def test_shuffled_feature_order_same_score(api: LiveServer, registered: Registered) -> None:
    body = body_for(registered, 11)
    names = list(body["features"])
    random.Random(3).shuffle(names)
    shuffled = {**body, "features": {name: body["features"][name] for name in names}}
    reversed_body = {**body, "features": dict(reversed(list(body["features"].items())))}
    scores = [
        httpx.post(api.url + SCORE_PATH, json=b).json()["score"]
        for b in (body, shuffled, reversed_body)
    ]
    assert scores[0] == scores[1]
    assert scores[0] == scores[2]


def test_response_fields(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, 5))
    document = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", document["request_id"])
    assert response.headers["x-request-id"] == document["request_id"]
    assert document["model"] == MODEL
    assert document["entity_id"] == "5"
    assert document["model_version"] == registered.champion
    assert document["arm"] == "champion"
    assert document["routing_version"] == 1
    assert document["explanation"] is None
    assert 0.0 <= document["score"] <= 1.0


def test_null_feature_scores_as_missing(api: LiveServer, registered: Registered) -> None:
    body = body_for(registered, 7)
    body["features"]["V3"] = None
    response = httpx.post(api.url + SCORE_PATH, json=body)
    assert response.status_code == 200
    features = {**body["features"], "V3": float("nan")}
    assert response.json()["score"] == predict_exact(
        registered.boosters[registered.champion], features
    )


def test_explain_sums_to_logit(api: LiveServer, registered: Registered) -> None:
    for index in (3, 541, 1999):
        response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, index, explain=True))
        document = response.json()
        explanation = document["explanation"]
        assert explanation["unit"] == "log_odds"
        assert list(explanation["attributions"]) == FEATURES
        total = sum(explanation["attributions"].values()) + explanation["base_value"]
        assert abs(total - logit(document["score"])) <= 1e-9


BAD_BODIES = [
    (b"", "request body is empty"),
    (b"{not json", "not valid JSON"),
    (b'{"entity_id": "\xff"}', "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    (b"[1, 2]", "must be a JSON object with entity_id and features, not an array"),
    (b'"text"', "not a string"),
    (b"null", "not null"),
    (b"12", "not a number"),
    (b'{"entity_id": "1"}', "features must be a JSON object"),
    (b'{"entity_id": "1", "features": [1, 2]}', "features must be a JSON object"),
    (b'{"entity_id": "1", "features": {}, "extra": 1}', "unknown fields: 'extra'"),
    (b'{"entity_id": "1", "features": {}, "' + b"k" * 200 + b'": 1}', "... (200 characters)"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_malformed_body_rejected(api: LiveServer, body: bytes, message: str) -> None:
    response = httpx.post(
        api.url + SCORE_PATH, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["category"] == "invalid_input"
    assert message in response.json()["detail"]


def _change(registered: Registered, **changes: object) -> dict:
    body = body_for(registered, 1)
    features = dict(body["features"])
    for name, value in changes.pop("features", {}).items():  # type: ignore[union-attr]
        if value is _DROP:
            del features[name]
        else:
            features[name] = value
    return {**body, "features": features, **changes}


_DROP = object()
BLANK_ENTITY_ID = (
    "entity_id is empty or only whitespace; use 1 to 128 printable characters, not all of them "
    "whitespace"
)
BAD_FIELDS = [
    ({"features": {"V3": _DROP}}, "missing features: V3"),
    ({"features": {"V3": _DROP, "Amount": _DROP}}, "missing features: V3, Amount"),
    ({"features": {"V99": 1.0}}, "unknown features: V99"),
    ({"features": {"V1": "abc"}}, "non-numeric or non-finite values for: V1"),
    ({"features": {"V1": True}}, "non-numeric or non-finite values for: V1"),
    ({"features": {"V1": [1.0]}}, "non-numeric or non-finite values for: V1"),
    ({"features": {"V1": {"x": 1}}}, "non-numeric or non-finite values for: V1"),
    ({"entity_id": None}, "entity_id must be a string"),
    ({"entity_id": {"a": 1}}, "entity_id must be a string"),
    ({"entity_id": True}, "entity_id must be a string"),
    ({"entity_id": ""}, BLANK_ENTITY_ID),
    ({"entity_id": " "}, BLANK_ENTITY_ID),
    ({"entity_id": "   "}, BLANK_ENTITY_ID),
    ({"entity_id": "\u3000\u2003"}, BLANK_ENTITY_ID),
    (
        {"entity_id": "a\nb"},
        "entity_id 'a\\nb' contains non-printable characters; use 1 to 128 printable characters",
    ),
    (
        {"entity_id": "x" * 129},
        "... (129 characters) is too long; use 1 to 128 printable characters",
    ),
    ({"explain": "yes"}, "explain must be true or false"),
    ({"event_time": "yesterday"}, "event_time 'yesterday' is not a valid ISO 8601 time"),
    ({"event_time": "2013-02-30T10:00:00Z"}, "is not a valid ISO 8601 time"),
    (
        {"event_time": "0001-01-01T00:00:00+05:00"},
        "event_time '0001-01-01T00:00:00+05:00' is out of range after conversion to UTC; use a "
        "time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
    ),
    ({"event_time": "9999-12-31T23:00:00-05:00"}, "is out of range after conversion to UTC"),
    ({"event_time": 1700000000}, "event_time must be an ISO 8601 string"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_FIELDS)
def test_invalid_field_rejected(
    api: LiveServer, registered: Registered, changes: dict, message: str
) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=_change(registered, **changes))
    assert response.status_code == 422
    assert message in response.json()["detail"]


NON_FINITE_MESSAGE = (
    "Non-finite numbers are not accepted: send a finite number, or null for a missing value"
)


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("NaN", "NaN at line 1 column 21 is not a JSON number, because JSON has no NaN"),
        ("Infinity", "Infinity at line 1 column 21 is not a JSON number"),
        ("-Infinity", "-Infinity at line 1 column 21 is not a JSON number"),
        ("1e309", "the number at line 1 column 21 is too large for a double and would be infinite"),
        ("-1e400", "the number at line 1 column 21 is too large for a double"),
    ],
)
def test_non_finite_number_rejected(
    api: LiveServer, registered: Registered, literal: str, message: str
) -> None:
    # The literal starts at column 21.
    text = '{"features": {"V1": ' + literal + '}, "entity_id": "1"}'
    response = httpx.post(
        api.url + SCORE_PATH, content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("request body is not valid JSON: ")
    assert message in detail
    assert NON_FINITE_MESSAGE in detail


def test_python_json_nan_named(api: LiveServer, registered: Registered) -> None:
    body = body_for(registered, 2)
    body["features"]["V4"] = float("nan")
    response = httpx.post(
        api.url + SCORE_PATH, content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "is not a JSON number, because JSON has no NaN" in response.json()["detail"]


def test_many_unknown_features_message_capped(api: LiveServer, registered: Registered) -> None:
    extra = {f"junk{i}" + "z" * 200: 1.0 for i in range(100)}
    body = body_for(registered, 1)
    body["features"].update(extra)
    response = httpx.post(api.url + SCORE_PATH, json=body)
    assert response.status_code == 422
    assert "(80 more)" in response.json()["detail"]
    assert len(response.text) < 5000


def test_integer_entity_id_accepted(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=_change(registered, entity_id=184203))
    assert response.status_code == 200
    assert response.json()["entity_id"] == "184203"


def test_unknown_model_not_found(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + "/v1/models/nope/score", json=body_for(registered, 1))
    assert response.status_code == 404
    assert response.json()["category"] == "not_found"
    assert "model 'nope' is not served here (served models: fraud)" in response.json()["detail"]
    assert httpx.get(api.url + "/v1/models/nope").status_code == 404
    assert httpx.post(api.url + "/v1/models/nope/score/batch", json={}).status_code == 404


def test_oversized_body_rejected(api: LiveServer) -> None:
    body = b'{"entity_id": "' + b"x" * MAX_BODY + b'"}'
    response = httpx.post(
        api.url + SCORE_PATH, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "MLP_MAX_BODY_BYTES" in response.json()["detail"]


def test_oversized_chunked_body_rejected(api: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = httpx.post(api.url + SCORE_PATH, content=chunks())
    assert response.status_code == 413


def test_batch_scores_every_record(api: LiveServer, registered: Registered) -> None:
    booster = registered.boosters[registered.champion]
    for size in (10, 45):  # 45 is scored in the thread pool
        records = [body_for(registered, i) for i in range(size)]
        response = httpx.post(api.url + BATCH_PATH, json={"records": records})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["entity_id"] for r in results] == [str(i) for i in range(size)]
        assert [r["score"] for r in results] == [
            predict_exact(booster, record["features"]) for record in records
        ]
        assert len({r["request_id"] for r in results}) == size


def test_batch_over_limit_rejected(api: LiveServer, registered: Registered) -> None:
    records = [body_for(registered, 0)] * (MAX_BATCH + 1)
    response = httpx.post(api.url + BATCH_PATH, json={"records": records})
    assert response.status_code == 413
    assert f"the maximum is {MAX_BATCH} (MLP_MAX_BATCH)" in response.json()["detail"]


def test_batch_invalid_record_named(api: LiveServer, registered: Registered) -> None:
    records = [body_for(registered, i) for i in range(4)]
    del records[2]["features"]["V5"]
    for blank in ("", "   "):
        records[3]["entity_id"] = blank
        response = httpx.post(api.url + BATCH_PATH, json={"records": records})
        assert response.status_code == 422
        assert f"records[3]: {BLANK_ENTITY_ID}" in response.json()["detail"]
    records[3]["entity_id"] = "3"
    response = httpx.post(api.url + BATCH_PATH, json={"records": records})
    assert response.status_code == 422
    assert "records[2]: missing features: V5" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'request body must be a JSON object {"records": [...]}'),
        ({"records": []}, f"records is an empty array; send 1 to {MAX_BATCH} score requests"),
        (
            {"records": "x"},
            "records must be a non-empty JSON array of score requests, not a string",
        ),
        ({"records": [1]}, "records[0] must be a JSON object"),
    ],
)
def test_batch_shape_rejected(api: LiveServer, body: dict, message: str) -> None:
    response = httpx.post(api.url + BATCH_PATH, json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert "not an array" not in response.json()["detail"]


REJECTED_MEDIA_TYPES = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/jsonl",
    "application/xml",
    "",
]
ACCEPTED_MEDIA_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    'Application/JSON;Charset="UTF-8"',
    "application/vnd.mlp.score+json",
    "application/problem+json; charset=utf-8",
    None,
]


def _json_request(
    api: LiveServer, registered: Registered, path: str, media_type: str | None
) -> httpx.Request:
    record = body_for(registered, 6)
    payload = record if path == SCORE_PATH else {"records": [record]}
    headers = {} if media_type is None else {"content-type": media_type}
    return httpx.Request("POST", api.url + path, content=json.dumps(payload), headers=headers)


@pytest.mark.parametrize("path", [SCORE_PATH, BATCH_PATH])
@pytest.mark.parametrize("media_type", REJECTED_MEDIA_TYPES)
def test_non_json_media_type_rejected(
    api: LiveServer, registered: Registered, path: str, media_type: str
) -> None:
    with httpx.Client() as client:
        response = client.send(_json_request(api, registered, path, media_type))
    assert response.status_code == 415, response.text
    assert response.json()["category"] == "unsupported_media_type"
    detail = response.json()["detail"]
    assert f"content-type {media_type!r} is not JSON" in detail
    assert "send the body as JSON with content-type: application/json" in detail


def test_non_utf8_json_charset_rejected(api: LiveServer, registered: Registered) -> None:
    media_type = "application/json; charset=iso-8859-1"
    with httpx.Client() as client:
        response = client.send(_json_request(api, registered, SCORE_PATH, media_type))
    assert response.status_code == 415
    assert "charset 'iso-8859-1' is not supported; JSON must be UTF-8" in response.json()["detail"]


@pytest.mark.parametrize("path", [SCORE_PATH, BATCH_PATH])
@pytest.mark.parametrize("media_type", ACCEPTED_MEDIA_TYPES)
def test_json_media_types_accepted(
    api: LiveServer, registered: Registered, path: str, media_type: str | None
) -> None:
    with httpx.Client() as client:
        request = _json_request(api, registered, path, media_type)
        if media_type is None:
            assert "content-type" not in request.headers
        response = client.send(request)
    assert response.status_code == 200, response.text


def test_event_time_logged(api: LiveServer, registered: Registered) -> None:
    body = body_for(registered, 9, entity_id="event-time-check", event_time="2013-09-01T10:00:00Z")
    response = httpx.post(api.url + SCORE_PATH, json=body)
    request_id = response.json()["request_id"]
    engine = get_engine(api.settings.warehouse_url)
    query = sa.select(prediction_log).where(prediction_log.c.request_id == request_id)

    def logged() -> bool:
        with engine.connect() as conn:
            return conn.execute(query).first() is not None

    wait_until(logged, timeout_s=10, what="the prediction log row")
    with engine.connect() as conn:
        row = conn.execute(query).one()
    assert row.event_time == datetime(2013, 9, 1, 10, tzinfo=UTC)
    assert row.entity_id == "event-time-check"
    assert row.features == body["features"]
    assert row.score == response.json()["score"]
    assert row.arm == "champion"
    assert row.model_version == registered.champion
    assert row.routing_version == 1
    assert row.status == 200
    assert row.latency_ms > 0


def test_random_bodies_never_500(api: LiveServer, registered: Registered) -> None:
    rng = random.Random(7)
    base = json.dumps(body_for(registered, 4)).encode()
    values = [None, True, 1, -1.5, 1e308, "s", [], {}, [[[]]], {"a": {"b": None}}, 2**64]
    statuses = set()
    with httpx.Client(base_url=api.url) as client:
        for _ in range(150):
            kind = rng.randrange(3)
            if kind == 0:
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            elif kind == 1:
                cut = rng.randrange(len(base))
                body = base[:cut] + bytes([rng.randrange(256)]) + base[cut + 1 :]
            else:
                document = json.loads(base)
                key = rng.choice(["entity_id", "features", "explain", "event_time"])
                document[key] = rng.choice(values)
                body = json.dumps(document).encode()
            path = rng.choice([SCORE_PATH, BATCH_PATH])
            statuses.add(client.post(path, content=body).status_code)
    assert statuses <= {200, 404, 413, 422}


def test_openapi_documents_schemas(api: LiveServer) -> None:
    document = httpx.get(api.url + "/openapi.json").json()
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/v1/models/{model}/score"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/ScoreRequest"}
    response_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert response_schema == {"$ref": "#/components/schemas/ScoreResponse"}
    assert [p["name"] for p in operation["parameters"]] == ["model"]
    assert schemas["Explanation"]["properties"]["unit"]["const"] == "log_odds"
    assert "log-odds" in schemas["Explanation"]["properties"]["unit"]["description"]
    assert set(schemas["ScoreRequest"]["properties"]) == {
        "entity_id",
        "features",
        "explain",
        "event_time",
    }
