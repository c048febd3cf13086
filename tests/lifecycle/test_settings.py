"""Settings: defaults under ./.mlp, MLP_ variables override, unrelated variables are ignored."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlp_orchestration.cli import main
from mlp_orchestration.settings import Settings, describe_settings


def test_default_home_is_project_local(monkeypatch, tmp_path):
    monkeypatch.delenv("MLP_HOME")
    monkeypatch.delenv("MLP_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/somewhere/else")
    settings = Settings()
    assert settings.home_dir == tmp_path / ".mlp"
    assert settings.data_path == tmp_path / ".mlp" / "data"
    assert settings.warehouse_url == f"sqlite:///{tmp_path / '.mlp' / 'warehouse.db'}"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / '.mlp' / 'mlflow' / 'mlflow.db'}"
    assert settings.dagster_home_dir == tmp_path / ".mlp" / "dagster"


def test_variables_named_like_fields_are_ignored(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    monkeypatch.setenv("ACTOR", "someone-else")
    monkeypatch.setenv("MLP_ACTOR", "risk-platform")
    settings = Settings()
    assert settings.database_url is None
    assert settings.actor == "risk-platform"


def test_mlp_variables_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLP_DATABASE_URL", "postgresql+psycopg2://db/warehouse")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    settings = Settings()
    assert settings.home_dir == tmp_path / "home"
    assert settings.warehouse_url == "postgresql+psycopg2://db/warehouse"
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.registry_uri == "http://mlflow:5000"


def test_start_without_offset_is_utc(monkeypatch):
    monkeypatch.setenv("MLP_ULB_START", "2020-03-01T00:00:00")
    assert Settings().ulb_start.isoformat() == "2020-03-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MLP_ROUTING_POLL_S", "0"), ("MLP_DAGSTER_EXECUTOR", "k8s"), ("MLP_ALERT_DEDUP_S", "-1")],
)
def test_invalid_value_rejected(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        Settings()


def test_every_setting_is_described():
    rows = describe_settings()
    names = {row["env"] for row in rows}
    assert {"MLP_HOME", "MLP_DATA_DIR", "MLP_DATABASE_URL", "DAGSTER_HOME"} <= names
    assert all(row["description"] for row in rows)


def test_cli_reports_invalid_setting(monkeypatch, capsys):
    monkeypatch.setenv("MLP_ROUTING_POLL_S", "never")
    assert main(["settings"]) == 2
    error = capsys.readouterr().err
    assert "invalid setting MLP_ROUTING_POLL_S: value 'never'" in error
