"""Training a candidate on a snapshot and recording it in MLflow as a new registered version.

The spec names the training function (``training.trainer``); the platform around it is the
same for every model: time-based splits, metrics on validation and holdout, the decision
threshold, and an MLflow run with the model in LightGBM's native text format.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.metrics import average_precision_score, roc_auc_score

from mlp_orchestration import registry
from mlp_orchestration.errors import MlpError, SpecError
from mlp_orchestration.features import SnapshotRecord
from mlp_orchestration.lightgbm_config import find_param_problems, training_params
from mlp_orchestration.serving.contract import INPUT_CONTRACT_TAG, contract_tag_value
from mlp_orchestration.settings import PROJECT_DIR, Settings
from mlp_orchestration.spec import ModelSpec

logger = logging.getLogger(__name__)

HOLDOUT_SCORES_FILE = "holdout_scores.parquet"


class TrainingError(MlpError):
    """Training could not produce a usable model."""


@dataclass(frozen=True)
class CandidateModel:
    """A trained, logged and registered model version."""

    model: str
    version: str
    run_id: str
    experiment_id: str
    snapshot_hash: str
    as_of: str
    decision_threshold: float
    metrics: dict[str, float]
    holdout_scores_path: str
    windows: dict[str, tuple[str, str]] = field(default_factory=dict)


def lightgbm_params(spec: ModelSpec) -> dict[str, Any]:
    """The parameters LightGBM trains with: the platform's defaults, then the spec's."""
    return training_params(spec.training.params, spec.training.seed)


def check_lightgbm_params(spec: ModelSpec) -> None:
    """Check the spec's parameters with LightGBM, before any real work.

    Spec validation runs the same check; this repeats it for specs built without validation
    (``model_copy``, ``model_construct``).

    Raises:
        SpecError: naming each unknown or invalid parameter, its value and the fix.
    """
    problems = find_param_problems(
        spec.training.params, seed=spec.training.seed, feature_names=spec.feature_names
    )
    if problems:
        raise SpecError(f"invalid training.params of model {spec.name!r}: {' '.join(problems)}")


def train_lightgbm_binary(
    train: pd.DataFrame, validation: pd.DataFrame, spec: ModelSpec
) -> lgb.Booster:
    """Train a binary LightGBM booster with early stopping on the validation window."""
    check_lightgbm_params(spec)
    features = spec.feature_names
    params = lightgbm_params(spec)
    train_set = lgb.Dataset(train[features], label=train[spec.label], free_raw_data=False)
    valid_set = lgb.Dataset(validation[features], label=validation[spec.label], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=spec.training.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(spec.training.early_stopping_rounds, verbose=False)],
    )


def score_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """PR-AUC (average precision) and ROC-AUC; both need at least one label of each class."""
    if labels.min() == labels.max():
        raise TrainingError(
            f"cannot compute PR-AUC and ROC-AUC on {len(labels)} rows with only label "
            f"{labels[0]}; widen the window so it holds both classes"
        )
    return {
        "pr_auc": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
    }


def decision_threshold(scores: np.ndarray, alert_rate: float) -> float:
    """The score above which ``alert_rate`` of the given scores fall."""
    return float(np.quantile(scores, 1.0 - alert_rate))


def git_revision() -> str:
    """Return the checkout's commit, with '-dirty' if it has uncommitted changes, or 'unknown'."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def train_candidate(
    settings: Settings,
    spec: ModelSpec,
    snapshot: SnapshotRecord,
    splits: dict[str, pd.DataFrame],
    *,
    run_tags: dict[str, str] | None = None,
) -> CandidateModel:
    """Train on the snapshot's windows, log the run to MLflow and register a new version."""
    features = spec.feature_names
    trainer = spec.training.resolve_trainer()
    booster = trainer(splits["training"], splits["validation"], spec)
    if not isinstance(booster, lgb.Booster):
        raise TrainingError(
            f"training function {spec.training.trainer} returned {type(booster).__name__}; "
            "it must return a lightgbm.Booster so the model is stored in native text format"
        )
    if list(booster.feature_name()) != features:
        raise TrainingError(
            f"the booster's features {booster.feature_name()[:5]}... differ from the spec's "
            f"{features[:5]}...; train on exactly spec.feature_names in that order"
        )

    validation_scores = booster.predict(splits["validation"][features], num_threads=1)
    holdout_scores = booster.predict(splits["holdout"][features], num_threads=1)
    metrics = {
        **{
            f"validation_{k}": v
            for k, v in score_metrics(
                splits["validation"][spec.label].to_numpy(), validation_scores
            ).items()
        },
        **{
            f"holdout_{k}": v
            for k, v in score_metrics(
                splits["holdout"][spec.label].to_numpy(), holdout_scores
            ).items()
        },
        "best_iteration": float(booster.best_iteration or booster.current_iteration()),
        **{f"{split}_rows": float(len(frame)) for split, frame in splits.items()},
        **{f"{split}_positives": float(frame[spec.label].sum()) for split, frame in splits.items()},
    }
    threshold = decision_threshold(validation_scores, spec.alert_rate)

    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, spec.name, settings)
    revision = git_revision()
    tags = {
        "mlp.model": spec.name,
        "mlp.snapshot_hash": snapshot.snapshot_hash,
        "mlp.as_of": snapshot.as_of.isoformat(),
        "mlp.git_revision": revision,
        **(run_tags or {}),
    }
    holdout = splits["holdout"]
    scores_frame = pd.DataFrame(
        {
            spec.entity_key: holdout[spec.entity_key].to_numpy(),
            "score": holdout_scores,
            spec.label: holdout[spec.label].to_numpy(),
        }
    )
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{spec.name}-{snapshot.as_of:%Y%m%dT%H%M}",
        tags=tags,
    ) as run:
        mlflow.log_params(_flat_params(spec, snapshot))
        mlflow.log_metrics(metrics)
        mlflow.log_metric("decision_threshold", threshold)
        with tempfile.TemporaryDirectory() as scratch:
            scores_path = Path(scratch) / HOLDOUT_SCORES_FILE
            scores_frame.to_parquet(scores_path, index=False)
            mlflow.log_artifact(str(scores_path), artifact_path="evaluation")
        sample = holdout[features].head(200)
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(sample, booster.predict(sample, num_threads=1)),
            registered_model_name=spec.registered_model_name,
            # Listing requirements skips MLflow's slow dependency inference.
            pip_requirements=[f"lightgbm=={lgb.__version__}", f"mlflow=={mlflow.__version__}"],
        )
    version = str(info.registered_model_version)
    registry.set_version_tags(
        client,
        spec.name,
        version,
        {
            "snapshot_hash": snapshot.snapshot_hash,
            "git_revision": revision,
            "decision_threshold": repr(threshold),
            "holdout_pr_auc": f"{metrics['holdout_pr_auc']:.6f}",
            "holdout_roc_auc": f"{metrics['holdout_roc_auc']:.6f}",
            "as_of": snapshot.as_of.isoformat(),
            "validation_start": snapshot.windows["validation"][0],
            "holdout_start": snapshot.windows["holdout"][0],
            "trained_by": settings.actor,
            "model_sha256": hashlib.sha256(booster.model_to_string().encode()).hexdigest(),
            # The scoring service checks requests against the spec this version trained under.
            INPUT_CONTRACT_TAG: contract_tag_value(spec.features),
        },
    )
    local_scores = (
        settings.home_dir / "candidates" / spec.name / f"v{version}" / HOLDOUT_SCORES_FILE
    )
    local_scores.parent.mkdir(parents=True, exist_ok=True)
    scores_frame.to_parquet(local_scores, index=False)
    logger.info(
        "registered %s version %s (run %s): holdout PR-AUC %.4f ROC-AUC %.4f",
        spec.name,
        version,
        run.info.run_id,
        metrics["holdout_pr_auc"],
        metrics["holdout_roc_auc"],
    )
    return CandidateModel(
        model=spec.name,
        version=version,
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        snapshot_hash=snapshot.snapshot_hash,
        as_of=snapshot.as_of.isoformat(),
        decision_threshold=threshold,
        metrics=metrics,
        holdout_scores_path=str(local_scores),
        windows=snapshot.windows,
    )


def _flat_params(spec: ModelSpec, snapshot: SnapshotRecord) -> dict[str, Any]:
    params: dict[str, Any] = {f"lgb.{k}": v for k, v in spec.training.params.items()}
    params.update(
        {
            "trainer": spec.training.trainer,
            "seed": spec.training.seed,
            "num_boost_round": spec.training.num_boost_round,
            "early_stopping_rounds": spec.training.early_stopping_rounds,
            "alert_rate": spec.alert_rate,
            "features": len(spec.feature_names),
            "snapshot_rows": snapshot.rows,
        }
    )
    for split, (start, end) in snapshot.windows.items():
        params[f"window.{split}"] = f"{start}/{end}"
    return params
