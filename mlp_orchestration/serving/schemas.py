"""Request and response shapes for the OpenAPI document only.

The routes read raw bytes and validate by hand (``validation.py``) to keep pydantic off the
request path. These models describe the same shapes in ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ScoreRequest(BaseModel):
    """One transaction to score."""

    entity_id: str = Field(
        min_length=1,
        max_length=128,
        description="Entity (transaction) id, which decides the canary arm. An integer is accepted "
        "and turned into its decimal string.",
        examples=["184203"],
    )
    features: dict[str, float | None] = Field(
        description="Every feature of the model by name, each a finite number or null "
        "(missing value). Order does not matter; unknown or missing names are rejected. "
        "Values outside the scoring version's input contract (GET /v1/models/{model}) are "
        "rejected: out-of-range numbers, and null for features trained without missing values."
    )
    explain: bool = Field(False, description="Return TreeSHAP attributions in log-odds.")
    event_time: datetime | None = Field(
        None,
        description="ISO 8601 time of the transaction (UTC when no offset is given), stored "
        "as the prediction log's event_time; defaults to the time the request arrived.",
    )


class Explanation(BaseModel):
    """TreeSHAP attributions from LightGBM: base_value + sum(attributions) = logit(score)."""

    unit: Literal["log_odds"] = Field(
        description="Unit of base_value and attributions: log-odds (logit) of the fraud "
        "probability, not probability."
    )
    base_value: float = Field(description="Expected raw score over the training data, in log-odds.")
    attributions: dict[str, float] = Field(
        description="One attribution per model feature, in log-odds."
    )


class ScoreResponse(BaseModel):
    """The score of one record and what produced it."""

    request_id: str = Field(description="Id of this scoring, also in the prediction log.")
    model: str
    entity_id: str
    score: float = Field(ge=0, le=1, description="Fraud probability.")
    model_version: str = Field(description="MLflow registered model version that scored.")
    arm: Literal["champion", "canary"] = Field(description="Traffic arm that scored.")
    routing_version: int = Field(description="Routing config version in force.")
    explanation: Explanation | None = Field(
        None, description="Present when the request set explain to true."
    )


class BatchRequest(BaseModel):
    """Several records to score in one request (at most MLP_MAX_BATCH)."""

    records: list[ScoreRequest] = Field(min_length=1)


class BatchResponse(BaseModel):
    """One result per record, in request order."""

    results: list[ScoreResponse]


class ErrorResponse(BaseModel):
    """Every error response: what failed and how to fix it."""

    detail: str = Field(description="What is wrong, with the value and the fix.")
    category: str = Field(
        description="Error category: invalid_input, not_found, unavailable, unauthorized, "
        "payload_too_large, conflict, data or internal."
    )


class FeatureContractInfo(BaseModel):
    """One feature's rule in a version's input contract, as recorded at training."""

    name: str
    min: float | None = Field(description="Smallest accepted value (inclusive), or null.")
    max: float | None = Field(description="Largest accepted value (inclusive), or null.")
    nullable: bool = Field(
        description="Whether null is accepted: true when the spec allowed missing values "
        "(max_missing_rate above 0) for the feature."
    )


class LoadedVersionInfo(BaseModel):
    version: str
    arm: Literal["champion", "canary", "shadow"]
    decision_threshold: float | None = Field(
        description="Score at which the decision engine raises an alert (MLflow version tag)."
    )
    loaded_at: datetime
    feature_names: list[str]
    input_contract: list[FeatureContractInfo] | None = Field(
        description="Per-feature range and null rules that requests are checked against "
        "(MLflow version tag input_contract); null for versions registered without one, "
        "which are scored without these checks."
    )


class LoadErrorInfo(BaseModel):
    routing_version: int
    message: str
    at: datetime
    failures: int


class ModelInfo(BaseModel):
    """A model's routing config in force, its loaded versions and the last load error."""

    model: str
    ready: bool
    routing: dict | None = Field(description="Routing config being served, or null.")
    loaded_versions: list[LoadedVersionInfo]
    last_load_error: LoadErrorInfo | None


DOC_MODELS: list[type[BaseModel]] = [
    ScoreRequest,
    ScoreResponse,
    Explanation,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    LoadedVersionInfo,
    FeatureContractInfo,
    LoadErrorInfo,
]


def request_body(model: type[BaseModel]) -> dict:
    """Return an ``openapi_extra`` entry that documents ``model`` as the JSON request body."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def responses(model: type[BaseModel], *statuses: int) -> dict:
    """Return a ``responses`` entry: ``model`` for 200 and ErrorResponse for each status."""
    documented: dict = {200: {"model": model}}
    for status in statuses:
        documented[status] = {"model": ErrorResponse}
    return documented
