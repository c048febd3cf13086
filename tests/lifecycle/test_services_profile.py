"""The services profile: the same lifecycle with PostgreSQL behind the warehouse, the routing
store, the MLflow tracking and registry store, and Dagster's storage (dagster-postgres)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from mlp_orchestration import registry
from mlp_orchestration.instance import open_instance
from mlp_orchestration.lifecycle import run_lifecycle
from mlp_orchestration.routing import RoutingStore
from mlp_orchestration.settings import get_settings
from mlp_orchestration.spec import load_spec_file
from mlp_orchestration.warehouse import get_engine, transactions
from tests.conftest import FRAUD_SPEC

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _plain_postgres(url: str) -> str:
    # Users usually give MLflow a plain postgresql:// URI; SQLAlchemy 2.0 maps it to psycopg2.
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def test_lifecycle_on_postgres(tmp_path, monkeypatch, postgres_databases):
    warehouse, mlflow_db, dagster_db = (postgres_databases() for _ in range(3))
    specs = tmp_path / "specs"
    specs.mkdir()
    raw = yaml.safe_load(FRAUD_SPEC.read_text())
    raw["windows"] = {
        "as_of": "2013-09-01T12:00:00Z",
        "training": "6h",
        "validation": "3h",
        "holdout": "3h",
    }
    raw["gates"]["performance"].update(min_pr_auc=0.3, min_roc_auc=0.8)
    (specs / "fraud.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLP_SPECS_DIR", str(specs))
    monkeypatch.setenv("MLP_DATABASE_URL", warehouse)
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", _plain_postgres(mlflow_db))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_db)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))

    settings = get_settings()
    instance = open_instance(settings)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    result = run_lifecycle(settings, instance, load_spec_file(specs / "fraud.yaml"))

    assert result.success
    assert result.promotion.action == "champion"
    engine = get_engine(settings.warehouse_url)
    assert engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(transactions)).scalar() == 284_807
        )
    routing = RoutingStore(engine).current("fraud")
    client = registry.configure(settings)
    assert routing.champion_version == registry.alias_version(client, "fraud", registry.CHAMPION)
    assert len(instance.get_runs()) == 1
    instance.dispose()
