"""The near-limit reference for ``mlp bench serve``: FastAPI, a pydantic body, booster.predict.

No routing, logging, metrics or auth: it parses the body with pydantic and scores one row with
``lightgbm.Booster.predict`` on one thread. Run it with uvicorn:

    BARE_MODEL_FILE=path/to/model.lgb uvicorn benchmarks.bare_app:app --port 8090
"""

from __future__ import annotations

import math
import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

booster = lgb.Booster(model_file=os.environ["BARE_MODEL_FILE"])
feature_names = booster.feature_name()
app = FastAPI()


class ScoreRequest(BaseModel):
    entity_id: str
    features: dict[str, float | None]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@app.post("/v1/models/{model}/score")
async def score(model: str, request: ScoreRequest) -> dict[str, float | str]:
    values = [request.features.get(name) for name in feature_names]
    row = np.array([[math.nan if v is None else v for v in values]], dtype=np.float64)
    probability = float(booster.predict(row, num_threads=1)[0])
    return {"entity_id": request.entity_id, "score": probability}
