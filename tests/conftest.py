"""Fixtures shared by every test: an isolated MLP_HOME and the real ULB data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mlp_orchestration.data import ulb
from mlp_orchestration.settings import PROJECT_DIR, Settings, get_settings
from mlp_orchestration.spec import ModelSpec, load_spec_file

FRAUD_SPEC = PROJECT_DIR / "mlp_orchestration" / "specs" / "fraud.yaml"


def data_dir() -> Path:
    """The dataset folder: MLP_DATA_DIR when set, else the shared copy beside the checkout."""
    configured = os.environ.get("MLP_DATA_DIR")
    if configured:
        return Path(configured).resolve()
    return (PROJECT_DIR.parent / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every store at a fresh folder, so no test touches ./.mlp or another test's state."""
    home = tmp_path / "mlp-home"
    monkeypatch.setenv("MLP_HOME", str(home))
    monkeypatch.setenv("MLP_DATA_DIR", str(data_dir()))
    for name in (
        "MLP_DATABASE_URL",
        "MLP_MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "MLP_MLFLOW_REGISTRY_URI",
        "MLFLOW_REGISTRY_URI",
        "DAGSTER_HOME",
        "DAGSTER_PG_URL",
        "MLP_REDIS_URL",
        "MLP_SLACK_TOKEN",
        "MLP_API_TOKENS",
        "MLP_SPECS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def settings(isolated_home: Path) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def ulb_frame() -> pd.DataFrame:
    """The verified ULB dataset in canonical form (downloaded first if no local copy exists)."""
    settings = Settings(MLP_DATA_DIR=str(data_dir()))
    return ulb.load(settings).frame


@pytest.fixture
def fraud_spec() -> ModelSpec:
    return load_spec_file(FRAUD_SPEC)
