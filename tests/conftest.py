"""Fixtures shared by every test: an isolated MLP_HOME and the real ULB data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
import sqlalchemy as sa

from mlp_orchestration.data import ulb
from mlp_orchestration.settings import PROJECT_DIR, Settings, get_settings
from mlp_orchestration.spec import ModelSpec, load_spec_file
from mlp_orchestration.warehouse import get_engine

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


def _server_url(variable: str) -> str:
    """The URL of a test server, or a skip when the variable is unset (a laptop without it).

    When the variable is set, an unreachable server fails the test instead of skipping it, so
    CI (which sets both variables) never passes by skipping.
    """
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set; set it to run the services-profile tests")
    return url


@pytest.fixture
def postgres_databases() -> Iterator[Callable[[], str]]:
    """A factory of fresh databases on MLP_TEST_POSTGRES_URL's server, all dropped afterwards."""
    admin_url = _server_url("MLP_TEST_POSTGRES_URL")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"mlp_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return (
            sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )

    try:
        yield create
    finally:
        get_engine.cache_clear()
        with admin.connect() as conn:
            for name in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """One fresh database on the PostgreSQL server of MLP_TEST_POSTGRES_URL."""
    return postgres_databases()


@pytest.fixture
def redis_url() -> str:
    """The Redis server of MLP_TEST_REDIS_URL, checked with a ping."""
    url = _server_url("MLP_TEST_REDIS_URL")
    redis.Redis.from_url(url, socket_timeout=2).ping()
    return url
