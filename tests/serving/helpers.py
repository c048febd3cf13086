"""Shared pieces of the scoring service tests: real servers on loopback, real MLflow models."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import uvicorn

from mlp_orchestration import registry
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.serving.app import create_app
from mlp_orchestration.settings import PROJECT_DIR, Settings
from mlp_orchestration.warehouse import get_engine

MODEL = "fraud"
FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]


def train_booster(frame: pd.DataFrame, *, rounds: int, seed: int, leaves: int = 15) -> lgb.Booster:
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


def register_booster(settings: Settings, booster: lgb.Booster, *, threshold: float | None) -> str:
    """Log a booster with mlflow.lightgbm and register it; return the new version."""
    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, MODEL, settings)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=MODEL)
    version = str(info.registered_model_version)
    if threshold is not None:
        registry.set_version_tags(client, MODEL, version, {"decision_threshold": str(threshold)})
    return version


def native_file_of(settings: Settings, version: str) -> Path:
    """Return the registered version's model.lgb in the local artifact store."""
    client = registry.configure(settings)
    location = client.get_model_version_download_uri(MODEL, version)
    return Path(location.removeprefix("file://")) / "model.lgb"


def write_routing(settings: Settings, **target: Any) -> int:
    """Append a routing config for the test model; return its version."""
    store = RoutingStore(get_engine(settings.warehouse_url), redis_url=settings.redis_url)
    current = store.current(MODEL)
    config = store.write(
        MODEL,
        RoutingTarget(**target),
        expected_version=current.version if current else 0,
        stage=RoutingStage.MANUAL,
        actor="tests",
        reason="serving test",
    )
    return config.version


def service_settings(base: Settings, home: Path, **overrides: Any) -> Settings:
    """Settings of one service: its own home and warehouse, the session's MLflow store."""
    values = {
        "home": home,
        "database_url": f"sqlite:///{home / 'warehouse.db'}",
        "mlflow_tracking_uri": base.tracking_uri,
        "mlflow_registry_uri": base.registry_uri,
        "mlflow_artifact_root": base.artifact_root,
        "redis_url": None,
        "api_tokens": None,
        "routing_poll_s": 0.2,
        "predlog_flush_s": 0.1,
    }
    values.update(overrides)
    return Settings(**values)


def features_of(row: pd.Series) -> dict[str, float]:
    return {name: float(row[name]) for name in FEATURES}


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def predict_exact(booster: lgb.Booster, features: dict[str, float]) -> float:
    row = np.array([[features[name] for name in FEATURES]], dtype=np.float64)
    return float(booster.predict(row, num_threads=1)[0])


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` was awaited after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class LiveServer:
    """The scoring app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, *, fast_path: bool = True) -> None:
        self.settings = settings
        self.app = create_app(settings, fast_path=fast_path)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", http="httptools", access_log=False
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def start(self, *, ready: bool = True) -> LiveServer:
        self._thread.start()
        wait_until(lambda: self.server.started, timeout_s=30, what="uvicorn to start")
        if ready:
            wait_until(self.is_ready, timeout_s=60, what="/readyz to report ready")
        return self

    def is_ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz").status_code == 200

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
        self._socket.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_cli_server(
    settings: Settings, port: int, *, workers: int = 1, log_path: Path
) -> subprocess.Popen:
    """Start ``mlp serve`` in a subprocess with the settings as environment variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLP_", "MLFLOW_", "PROMETHEUS_"))
    }
    env.update(
        {
            "MLP_HOME": str(settings.home),
            "MLP_DATABASE_URL": settings.warehouse_url,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "MLFLOW_REGISTRY_URI": settings.registry_uri,
            "MLP_MLFLOW_ARTIFACT_ROOT": settings.artifact_root,
            "MLP_ROUTING_POLL_S": str(settings.routing_poll_s),
            "MLP_PREDLOG_FLUSH_S": "5",
        }
    )
    command = [
        sys.executable, "-m", "mlp_orchestration.cli", "serve",
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, cwd=PROJECT_DIR, stdout=log, stderr=log)
