"""``GET /v1/models/{model}``: routing config in force, loaded versions, last load error."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from mlp_orchestration.serving import schemas
from mlp_orchestration.serving.deps import RuntimeDep
from mlp_orchestration.serving.state import ServingState

router = APIRouter(tags=["models"])


@router.get(
    "/models/{model}",
    name="model_info",
    summary="Describe a served model",
    responses=schemas.responses(schemas.ModelInfo, 401, 404, 503),
)
async def model_info(model: str, runtime: RuntimeDep) -> Response:
    """Return the routing config being served, each loaded version and the last load error."""
    state = runtime.follower.state
    if model not in state.routed and model not in state.routes:
        raise state.unknown_model(model)
    runtime.metrics.count_request(model, "model_info", 200)
    return Response(
        orjson.dumps(describe_model(state, model)),
        media_type="application/json",
    )


def describe_model(state: ServingState, model: str) -> dict[str, Any]:
    """Build the model info document from a serving state."""
    route = state.routes.get(model)
    error = state.errors.get(model)
    loaded = []
    routing = None
    if route is not None:
        routing = route.config.model_dump(mode="json")
        for arm, version in route.roles():
            loaded.append(
                {
                    "version": version.version,
                    "arm": arm,
                    "decision_threshold": version.decision_threshold,
                    "loaded_at": version.loaded_at.isoformat(),
                    "feature_names": version.native.feature_names,
                    "input_contract": None
                    if version.contract is None
                    else version.contract.describe(),
                }
            )
    return {
        "model": model,
        "ready": route is not None,
        "routing": routing,
        "loaded_versions": loaded,
        "last_load_error": None
        if error is None
        else {
            "routing_version": error.routing_version,
            "message": error.message,
            "at": error.at.isoformat(),
            "failures": error.failures,
        },
    }
