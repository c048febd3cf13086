"""Fixtures of the rollout tests: a real MLflow store with LightGBM versions trained on ULB rows.

Boosters are trained and logged once per session. Each test registers its own model name
(pointing at the logged artifacts), so aliases moved by one test never reach another.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.data import ulb
from mlp_orchestration.rollout.context import RolloutContext
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.settings import Settings, get_settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import get_engine

FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]
SLICE_ROWS = 30_000
# Decision threshold of both versions in the tests that log known scores.
THRESHOLD = 0.2
_names = itertools.count(1)


@dataclass(frozen=True)
class LoggedModels:
    """Boosters logged once in the session's MLflow store."""

    tracking_uri: str
    artifact_root: str
    sources: dict[str, tuple[str, str, str]]  # role -> (model uri, run id, model id)
    boosters: dict[str, lgb.Booster]
    frame: pd.DataFrame


def _train(frame: pd.DataFrame, *, rounds: int, seed: int, leaves: int) -> lgb.Booster:
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": leaves,
        "min_child_samples": 20,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(frame[FEATURES], label=frame["Class"], feature_name=FEATURES)
    return lgb.train(params, data, num_boost_round=rounds)


@pytest.fixture(scope="session")
def ulb_slice() -> pd.DataFrame:
    """The first rows of the real ULB data, with transaction ids as the loader assigns them."""
    settings = Settings(MLP_DATA_DIR=str(_data_dir()))
    path = ulb.local_path(settings)
    if not path.is_file():
        pytest.skip(f"the ULB dataset is not at {path}; set MLP_DATA_DIR")
    frame = pd.read_parquet(path).iloc[:SLICE_ROWS]
    return ulb.with_event_time(frame, settings.ulb_start)


def _data_dir() -> Path:
    from tests.conftest import data_dir

    return data_dir()


@pytest.fixture(scope="session")
def logged_models(
    tmp_path_factory: pytest.TempPathFactory, ulb_slice: pd.DataFrame
) -> LoggedModels:
    home = tmp_path_factory.mktemp("rollout-mlflow")
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    artifact_root = (home / "artifacts").as_uri()
    settings = Settings(
        home=home, mlflow_tracking_uri=tracking_uri, mlflow_artifact_root=artifact_root
    )
    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, "rollout_tests", settings)
    train = ulb_slice.iloc[: SLICE_ROWS // 2]
    boosters = {
        "champion": _train(train, rounds=40, seed=1, leaves=15),
        "challenger": _train(train, rounds=50, seed=2, leaves=11),
    }
    sources = {}
    for role, booster in boosters.items():
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.lightgbm.log_model(booster, name="model")
        sources[role] = (info.model_uri, run.info.run_id, info.model_id)
    return LoggedModels(tracking_uri, artifact_root, sources, boosters, ulb_slice)


def decision_threshold(booster: lgb.Booster, frame: pd.DataFrame, rate: float) -> float:
    scores = booster.predict(frame[FEATURES].to_numpy(), num_threads=1)
    return float(np.quantile(scores, 1.0 - rate))


@dataclass
class RolloutEnv:
    """One test's model: its settings, spec, stores and registered versions."""

    settings: Settings
    spec: ModelSpec
    ctx: RolloutContext
    client: MlflowClient
    champion: str
    challenger: str
    thresholds: dict[str, float]
    models: LoggedModels

    def register(self, role: str, *, tags: dict[str, str]) -> str:
        source, run_id, model_id = self.models.sources[role]
        version = self.client.create_model_version(
            self.spec.name, source, run_id=run_id, model_id=model_id
        ).version
        registry.set_version_tags(self.client, self.spec.name, version, tags)
        return str(version)


@pytest.fixture
def rollout_env(
    logged_models: LoggedModels, fraud_spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> RolloutEnv:
    """A model with champion v1 (routing v1, INITIAL) and challenger v2 that passed its gates."""
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", logged_models.tracking_uri)
    monkeypatch.setenv("MLP_MLFLOW_ARTIFACT_ROOT", logged_models.artifact_root)
    monkeypatch.setenv("MLP_ACTOR", "tests")
    settings = get_settings()
    name = f"fraud_r{next(_names)}_{np.random.default_rng().integers(1 << 30)}"
    spec = fraud_spec.model_copy(update={"name": name})
    client = registry.configure(settings)
    client.create_registered_model(name)
    holdout = logged_models.frame.iloc[SLICE_ROWS // 2 :]
    thresholds = {
        role: decision_threshold(booster, holdout, spec.alert_rate)
        for role, booster in logged_models.boosters.items()
    }
    env = RolloutEnv(
        settings,
        spec,
        RolloutContext.create(settings, spec),
        client,
        "",
        "",
        thresholds,
        logged_models,
    )
    env.champion = env.register(
        "champion",
        tags={"decision_threshold": str(thresholds["champion"]), "gate_verdict": "passed"},
    )
    env.challenger = env.register(
        "challenger",
        tags={
            "decision_threshold": str(thresholds["challenger"]),
            "gate_verdict": "passed",
            "holdout_pr_auc": "0.71",
            "snapshot_hash": "abc123",
        },
    )
    registry.set_alias(client, name, registry.CHAMPION, env.champion)
    registry.set_alias(client, name, registry.CHALLENGER, env.challenger)
    env.ctx.store.write(
        name,
        RoutingTarget(champion_version=env.champion),
        expected_version=0,
        stage=RoutingStage.INITIAL,
        actor="lifecycle",
        reason="first champion",
    )
    get_engine(settings.warehouse_url)
    return env


@pytest.fixture
def env(rollout_env):
    """The rollout environment with both versions' decision thresholds at THRESHOLD."""
    for version in (rollout_env.champion, rollout_env.challenger):
        registry.set_version_tags(
            rollout_env.client,
            rollout_env.spec.name,
            version,
            {"decision_threshold": str(THRESHOLD)},
        )
    rollout_env.ctx = RolloutContext.create(rollout_env.settings, rollout_env.spec)
    return rollout_env
