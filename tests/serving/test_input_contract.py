"""Each served version's input contract, recorded at training, over HTTP on a live server."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlp_orchestration import registry
from mlp_orchestration.features import SnapshotRecord
from mlp_orchestration.serving.canary import CANARY, CHAMPION, canary_salt, choose_arm
from mlp_orchestration.serving.contract import (
    INPUT_CONTRACT_TAG,
    ContractFormatError,
    InputContract,
    InputContractError,
    contract_tag_value,
)
from mlp_orchestration.settings import PROJECT_DIR
from mlp_orchestration.spec import FeatureSpec, load_spec_file
from mlp_orchestration.training import train_candidate
from mlp_orchestration.warehouse import get_engine, prediction_log

from .conftest import Registered
from .helpers import (
    FEATURES,
    MODEL,
    LiveServer,
    features_of,
    register_booster,
    service_settings,
    wait_until,
    write_routing,
)

FRAUD_SPEC = PROJECT_DIR / "mlp_orchestration" / "specs" / "fraud.yaml"
SCORE_PATH = f"/v1/models/{MODEL}/score"
BATCH_PATH = f"/v1/models/{MODEL}/score/batch"
LOADER_LOGGER = "mlp_orchestration.serving.loader"


@dataclass(frozen=True)
class ContractVersions:
    """Registered versions with a recorded input contract, or a broken one."""

    trained: str  # trained by train_candidate on the fraud spec: Amount >= 0, no nulls
    relaxed: str  # V1 <= 5, V3 may be null, Amount from 0 to 10,000
    broken: str  # an input_contract tag that is not JSON


@pytest.fixture(scope="module")
def versions(registered: Registered, ulb_rows: pd.DataFrame) -> ContractVersions:
    spec = load_spec_file(FRAUD_SPEC)
    quick = spec.training.model_copy(update={"num_boost_round": 40, "early_stopping_rounds": 10})
    spec = spec.model_copy(update={"training": quick})
    frame = ulb_rows.assign(transaction_id=ulb_rows.index.astype("int64"))
    splits = {
        "training": frame.iloc[:12_000].reset_index(drop=True),
        "validation": frame.iloc[12_000:16_000].reset_index(drop=True),
        "holdout": frame.iloc[16_000:].reset_index(drop=True),
    }
    snapshot = SnapshotRecord(
        model=MODEL,
        snapshot_hash="serving-contract-tests",
        path="",
        rows=len(frame),
        positives=int(frame["Class"].sum()),
        as_of=datetime(2013, 9, 1, 6, tzinfo=UTC),
        windows={split: ("2013-09-01T00:00:00", "2013-09-01T06:00:00") for split in splits},
    )
    trained = train_candidate(registered.settings, spec, snapshot, splits).version

    relaxed_features = [
        FeatureSpec(name="V1", max=5.0),
        FeatureSpec(name="V3", max_missing_rate=0.2),
        FeatureSpec(name="Amount", min=0.0, max=10_000.0),
    ]
    by_name = {feature.name: feature for feature in relaxed_features}
    features = [by_name.get(name, FeatureSpec(name=name)) for name in FEATURES]
    booster = registered.boosters[registered.champion]
    client = registry.configure(registered.settings)
    relaxed = register_booster(registered.settings, booster, threshold=0.5)
    registry.set_version_tags(
        client, MODEL, relaxed, {INPUT_CONTRACT_TAG: contract_tag_value(features)}
    )
    broken = register_booster(registered.settings, booster, threshold=0.5)
    registry.set_version_tags(client, MODEL, broken, {INPUT_CONTRACT_TAG: "{not json"})
    return ContractVersions(trained=trained, relaxed=relaxed, broken=broken)


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi-routes"])
def api(
    request: pytest.FixtureRequest,
    registered: Registered,
    versions: ContractVersions,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    settings = service_settings(registered.settings, tmp_path_factory.mktemp("contract-api"))
    write_routing(settings, champion_version=versions.trained)
    live = LiveServer(settings, fast_path=request.param).start()
    yield live
    live.stop()


def start_server(registered: Registered, home: Path, **routing: object) -> LiveServer:
    settings = service_settings(registered.settings, home)
    write_routing(settings, **routing)
    return LiveServer(settings).start()


def body_for(registered: Registered, index: int, **changes: float | None) -> dict:
    features = features_of(registered.frame.iloc[index])
    features.update(changes)
    return {"entity_id": str(index), "features": features}


def routing_version(server: LiveServer) -> int:
    return httpx.get(f"{server.url}/v1/models/{MODEL}").json()["routing"]["version"]


def test_training_records_contract(registered: Registered, versions: ContractVersions) -> None:
    client = registry.configure(registered.settings)
    tags = registry.get_version(client, MODEL, versions.trained).tags
    contract = InputContract.from_tag(
        tags[INPUT_CONTRACT_TAG], model=MODEL, version=versions.trained, feature_names=FEATURES
    )
    described = {rule["name"]: rule for rule in contract.describe()}
    assert described["Amount"] == {"name": "Amount", "min": 0.0, "max": None, "nullable": False}
    assert described["V1"] == {"name": "V1", "min": None, "max": None, "nullable": False}


def test_valid_record_scored(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, 4))
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["score"] <= 1.0


def test_range_bound_inclusive(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, 4, Amount=0.0))
    assert response.status_code == 200, response.text


def test_below_min_rejected(
    api: LiveServer, registered: Registered, versions: ContractVersions
) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, 4, Amount=-50))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert response.json()["category"] == "invalid_input"
    assert f"input contract of {MODEL} version {versions.trained}" in detail
    assert "Amount is -50.0, outside the allowed range [0.0, inf)" in detail


def test_all_null_features_rejected(api: LiveServer) -> None:
    body = {"entity_id": "9", "features": dict.fromkeys(FEATURES)}
    response = httpx.post(api.url + SCORE_PATH, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "null for V1, V2, V3" in detail
    assert "(9 more)" in detail
    assert "trained without missing values for them" in detail


def test_one_null_feature_rejected(api: LiveServer, registered: Registered) -> None:
    response = httpx.post(api.url + SCORE_PATH, json=body_for(registered, 4, V3=None))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "null for V3, but this version was trained without missing values for it" in detail
    assert "Amount" not in detail


def test_range_and_null_both_named(api: LiveServer, registered: Registered) -> None:
    body = body_for(registered, 4, Amount=-1.5, V7=None)
    response = httpx.post(api.url + SCORE_PATH, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "Amount is -1.5, outside the allowed range [0.0, inf)" in detail
    assert "null for V7" in detail


def test_batch_names_invalid_records(
    api: LiveServer, registered: Registered, versions: ContractVersions
) -> None:
    records = [body_for(registered, i) for i in range(5)]
    records[1]["features"]["Amount"] = -1
    records[3]["features"]["V2"] = None
    response = httpx.post(api.url + BATCH_PATH, json={"records": records})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("2 of 5 records are invalid; nothing was scored: records[1]: ")
    assert "records[1]: features do not match the input contract" in detail
    assert "Amount is -1.0, outside the allowed range [0.0, inf)" in detail
    assert "records[3]: features do not match the input contract" in detail
    assert "null for V2" in detail
    assert "records[0]" not in detail


def test_batch_of_valid_records_scored(api: LiveServer, registered: Registered) -> None:
    records = [body_for(registered, i) for i in range(5)]
    response = httpx.post(api.url + BATCH_PATH, json={"records": records})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 5


def test_model_info_shows_contract(api: LiveServer) -> None:
    [loaded] = httpx.get(f"{api.url}/v1/models/{MODEL}").json()["loaded_versions"]
    contract = loaded["input_contract"]
    assert [rule["name"] for rule in contract] == FEATURES
    assert contract[-1] == {"name": "Amount", "min": 0.0, "max": None, "nullable": False}


def test_canary_checked_against_own_contract(
    registered: Registered, versions: ContractVersions, tmp_path: Path
) -> None:
    salt = canary_salt(MODEL, versions.relaxed)
    arms = {str(i): choose_arm(str(i), salt=salt, share=0.5) for i in range(40)}
    canary_id = next(entity for entity, arm in arms.items() if arm == CANARY)
    champion_id = next(entity for entity, arm in arms.items() if arm == CHAMPION)
    live = start_server(
        registered,
        tmp_path,
        champion_version=versions.trained,
        canary_version=versions.relaxed,
        canary_share=0.5,
    )
    try:
        null_v3 = {**body_for(registered, 4, V3=None)}
        on_canary = httpx.post(live.url + SCORE_PATH, json={**null_v3, "entity_id": canary_id})
        on_champion = httpx.post(live.url + SCORE_PATH, json={**null_v3, "entity_id": champion_id})
        large_v1 = {**body_for(registered, 4, V1=6.0), "entity_id": canary_id}
        over_max = httpx.post(live.url + SCORE_PATH, json=large_v1)
    finally:
        live.stop()

    # The canary's contract accepts null for V3; the champion's does not.
    assert on_canary.status_code == 200, on_canary.text
    assert on_canary.json()["model_version"] == versions.relaxed
    assert on_champion.status_code == 422
    assert f"{MODEL} version {versions.trained}" in on_champion.json()["detail"]
    assert over_max.status_code == 422
    detail = over_max.json()["detail"]
    assert f"{MODEL} version {versions.relaxed}" in detail
    assert "V1 is 6.0, outside the allowed range (-inf, 5.0]" in detail


def test_shadow_rejection_logged(
    registered: Registered, versions: ContractVersions, tmp_path: Path
) -> None:
    live = start_server(
        registered,
        tmp_path,
        champion_version=versions.relaxed,
        shadow_versions=(versions.trained,),
    )
    try:
        response = httpx.post(live.url + SCORE_PATH, json=body_for(registered, 4, V3=None))
        request_id = response.json()["request_id"]
        engine = get_engine(live.settings.warehouse_url)
        query = sa.select(prediction_log).where(prediction_log.c.request_id == request_id)

        def rows() -> list:
            with engine.connect() as conn:
                return list(conn.execute(query))

        wait_until(lambda: len(rows()) == 2, timeout_s=15, what="champion and shadow rows")
        by_arm = {row.arm: row for row in rows()}
    finally:
        live.stop()

    assert response.status_code == 200, response.text
    assert by_arm["champion"].status == 200
    shadow = by_arm["shadow"]
    assert shadow.model_version == versions.trained
    assert shadow.status == 422
    assert shadow.score is None
    assert "null for V3" in shadow.error


def test_version_without_contract_unchecked(
    registered: Registered, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlp_orchestration")
    live = start_server(registered, tmp_path, champion_version=registered.champion)
    try:
        below_min = httpx.post(live.url + SCORE_PATH, json=body_for(registered, 4, Amount=-50))
        # Route another version, then the first one again, so the follower loads it twice.
        write_routing(live.settings, champion_version=registered.challenger)
        wait_until(lambda: routing_version(live) == 2, timeout_s=30, what="routing v2")
        write_routing(live.settings, champion_version=registered.champion)
        wait_until(lambda: routing_version(live) == 3, timeout_s=30, what="routing v3")
        info = httpx.get(f"{live.url}/v1/models/{MODEL}").json()
    finally:
        live.stop()

    assert below_min.status_code == 200, below_min.text
    assert info["loaded_versions"][0]["input_contract"] is None
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == LOADER_LOGGER
        and record.levelno == logging.WARNING
        and f"version {registered.champion} has no {INPUT_CONTRACT_TAG} tag" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "served without range or missing-value checks" in warnings[0]


def test_invalid_contract_tag_not_served(
    registered: Registered, versions: ContractVersions, tmp_path: Path
) -> None:
    settings = service_settings(registered.settings, tmp_path)
    write_routing(settings, champion_version=versions.broken)
    live = LiveServer(settings).start(ready=False)
    try:
        wait_until(
            lambda: httpx.get(f"{live.url}/v1/models/{MODEL}").json()["last_load_error"],
            timeout_s=30,
            what="the load error",
        )
        scored = httpx.post(live.url + SCORE_PATH, json=body_for(registered, 4))
    finally:
        live.stop()

    assert scored.status_code == 503
    detail = scored.json()["detail"]
    assert f"{MODEL} version {versions.broken} has an invalid {INPUT_CONTRACT_TAG} tag" in detail
    assert "it is not valid JSON" in detail


def contract_of(*features: FeatureSpec) -> InputContract:
    names = [feature.name for feature in features]
    return InputContract.from_tag(
        contract_tag_value(features), model=MODEL, version="7", feature_names=names
    )


CHECKED_ROWS = [
    # (features, row, expected message or None when valid)
    ([FeatureSpec(name="a", max=1.0)], [1.0], None),
    ([FeatureSpec(name="a", max=1.0)], [1.5], "a is 1.5, outside the allowed range (-inf, 1.0]"),
    ([FeatureSpec(name="a", max=1.0)], [math.nan], "null for a"),
    ([FeatureSpec(name="a", min=-2.0)], [-2.0], None),
    ([FeatureSpec(name="a", min=-2.0)], [-3.0], "a is -3.0, outside the allowed range [-2.0, inf)"),
    ([FeatureSpec(name="a", min=0.0, max=1.0)], [0.5], None),
    ([FeatureSpec(name="a", min=0.0, max=1.0)], [2.0], "outside the allowed range [0.0, 1.0]"),
    ([FeatureSpec(name="a")], [1e308], None),
    ([FeatureSpec(name="a")], [math.nan], "null for a, but this version was trained without"),
    ([FeatureSpec(name="a", max_missing_rate=0.1)], [math.nan], None),
    (
        [FeatureSpec(name="a", max_missing_rate=0.1, max=1.0), FeatureSpec(name="b", min=0.0)],
        [math.nan, -1.0],
        "b is -1.0, outside the allowed range [0.0, inf)",
    ),
]


@pytest.mark.parametrize(("features", "values", "message"), CHECKED_ROWS)
def test_contract_check(
    features: list[FeatureSpec], values: list[float], message: str | None
) -> None:
    contract = contract_of(*features)
    row = np.array(values, dtype=np.float64)
    if message is None:
        contract.check(row)
        return
    with pytest.raises(InputContractError, match=re.escape(message)):
        contract.check(row)


def test_many_violations_capped() -> None:
    contract = contract_of(*(FeatureSpec(name=f"f{i}", min=0.0) for i in range(50)))
    with pytest.raises(
        InputContractError, match=r"f19 is -1\.0.*; 30 more values are out of range"
    ):
        contract.check(np.full(50, -1.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "it is not valid JSON"),
        ('{"format": 2, "features": []}', "it is not a JSON object with format 1"),
        ('{"format": 1, "features": []}', "its features field is not a non-empty array"),
        ('{"format": 1, "features": [{"min": 1}]}', r"features\[0\] is not an object with a name"),
        (
            '{"format": 1, "features": [{"name": "a", "min": "0", "max_missing_rate": 0}]}',
            r"features\[0\] min '0' is not a number or null",
        ),
        (
            '{"format": 1, "features": [{"name": "a", "max_missing_rate": 2}]}',
            r"features\[0\] max_missing_rate 2 is not a number from 0 to 1",
        ),
        (
            '{"format": 1, "features": [{"name": "b", "max_missing_rate": 0}]}',
            "its features b differ from the model's a",
        ),
    ],
)
def test_invalid_contract_tag_rejected(text: str, message: str) -> None:
    with pytest.raises(ContractFormatError, match=message):
        InputContract.from_tag(text, model=MODEL, version="7", feature_names=["a"])
