"""Fixtures of the routing tests: registered model versions and a real MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import lightgbm as lgb
import numpy as np
import pytest
from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.settings import Settings

MODEL = "fraud"
# Tags the lifecycle sets on a version that passed its gates; a rollout reads both.
PASSED_TAGS = {"gate_verdict": "passed", "decision_threshold": "0.2"}
SERVER_START_TIMEOUT_S = 120


def tiny_booster() -> lgb.Booster:
    """Return a two-tree booster on random data, small enough to train in milliseconds."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    labels = (features[:, 0] > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 3, "verbosity": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(features, labels), num_boost_round=2)


def register_versions(client: MlflowClient, count: int) -> list[str]:
    """Register ``count`` versions of MODEL that passed their gates; champion is version 1.

    The versions share one run whose ``model/model.lgb`` is a tiny booster: a rollback checks
    that the champion's file loads, and routing tests score nothing.
    """
    run = client.create_run("0")
    with tempfile.TemporaryDirectory() as scratch:
        model_file = Path(scratch) / registry.NATIVE_MODEL_FILE
        tiny_booster().save_model(str(model_file))
        client.log_artifact(run.info.run_id, str(model_file), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    versions = []
    for _ in range(count):
        version = str(
            client.create_model_version(
                MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
            ).version
        )
        registry.set_version_tags(client, MODEL, version, PASSED_TAGS)
        versions.append(version)
    registry.set_alias(client, MODEL, registry.CHAMPION, versions[0])
    return versions


@pytest.fixture
def registered(settings: Settings) -> MlflowClient:
    """MODEL versions 1 to 3 in the isolated home's MLflow store, champion alias on 1."""
    client = registry.configure(settings)
    register_versions(client, 3)
    return client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on loopback with its own SQLite store; yields its URL."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            (home / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_healthy(url, process, home / "server.log")
        yield url
    finally:
        # The server runs its workers as children in the session started above.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server at {url} not healthy after {SERVER_START_TIMEOUT_S} s")
