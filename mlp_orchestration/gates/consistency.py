"""Consistency gate: what the registry serves is what training evaluated.

The registered version is downloaded from the MLflow registry by version, loaded from its native
text file and fed the holdout rows through the scoring service's code path, each row as a
``{name: value}`` mapping in shuffled order. Its scores must equal the training path's scores
(exactly, by default), and the logged signature must list the spec's features as doubles.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import mlflow
import numpy as np

from mlp_orchestration import registry
from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult
from mlp_orchestration.scoring import NativeModel


def serving_path_scores(
    model: NativeModel, rows: np.ndarray, names: list[str], seed: int
) -> np.ndarray:
    """Score rows the way the scoring service does: by name, in a shuffled key order."""
    shuffled = list(range(len(names)))
    random.Random(seed).shuffle(shuffled)
    scores = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        features = {names[j]: float(row[j]) for j in shuffled}
        scores[i] = model.predict_features(features)
    return scores


def consistency_gate(context: GateContext) -> GateResult:
    spec = context.spec
    candidate = context.candidate
    limit = spec.gates.consistency.max_abs_diff
    with tempfile.TemporaryDirectory() as scratch:
        path = registry.download_native_model(
            context.settings, spec.name, candidate.version, Path(scratch) / "model.lgb"
        )
        model = NativeModel.from_file(path, version=candidate.version)
    names = spec.feature_names
    rows = context.holdout[names].to_numpy(dtype=np.float64)
    served = serving_path_scores(model, rows, names, seed=spec.training.seed)
    difference = float(np.max(np.abs(served - context.candidate_scores))) if len(rows) else 0.0
    checks = [
        GateCheck.compare(
            "registry_reload_max_abs_diff",
            difference,
            limit,
            "<=",
            f"largest score difference over {len(rows):,} holdout rows between "
            "the registry reload on the serving path and training",
        ),
    ]
    feature_match = model.feature_names == names
    checks.append(
        GateCheck(
            "model_features_match_spec",
            float(feature_match),
            1.0,
            ">=",
            feature_match,
            "model feature names match the spec"
            if feature_match
            else f"model features {model.feature_names[:5]}... differ from the spec's "
            f"{names[:5]}...",
        )
    )
    info = mlflow.models.get_model_info(f"models:/{spec.name}/{candidate.version}")
    signature = info.signature
    inputs = signature.inputs.to_dict() if signature is not None else []
    signature_names = [column.get("name") for column in inputs]
    signature_types = {column.get("type") for column in inputs}
    signature_ok = signature_names == names and signature_types <= {"double"}
    checks.append(
        GateCheck(
            "signature_matches_spec",
            float(signature_ok),
            1.0,
            ">=",
            signature_ok,
            "signature lists the spec's features as doubles"
            if signature_ok
            else f"signature inputs {signature_names[:5]}... of types "
            f"{sorted(map(str, signature_types))} do not match the spec's {len(names)} "
            "double features",
        )
    )
    context.extra["serving_scores"] = served
    return GateResult("consistency", all(c.passed for c in checks), checks)
