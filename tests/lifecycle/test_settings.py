"""Settings: defaults under ./.mlp, MLP_ variables override, unrelated variables are ignored,
folders and database URLs are checked, and secrets in URLs are hidden."""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import ValidationError

from mlp_orchestration.cli import main
from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.settings import Settings, describe_settings, get_settings, safe_url
from mlp_orchestration.warehouse import get_engine


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


@pytest.mark.parametrize(
    "url",
    [
        " postgresql://alice:qsecret1@127.0.0.1/db",
        "postgresql//alice:qsecret1@127.0.0.1/db",
        "host=127.0.0.1 user=alice password=qsecret1",
    ],
)
def test_invalid_database_url_password_hidden(monkeypatch, capsys, url):
    monkeypatch.setenv("MLP_DATABASE_URL", url)
    assert main(["settings"]) == 2
    error = capsys.readouterr().err
    assert "invalid setting MLP_DATABASE_URL" in error
    assert "qsecret1" not in error


def test_cli_reports_invalid_setting(monkeypatch, capsys):
    monkeypatch.setenv("MLP_ROUTING_POLL_S", "never")
    assert main(["settings"]) == 2
    error = capsys.readouterr().err
    assert "invalid setting MLP_ROUTING_POLL_S: value 'never'" in error


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://alice@127.0.0.1/db?password=qsecret1",
            "postgresql://alice@127.0.0.1/db?password=***",
        ),
        (
            "postgresql+psycopg2://alice:pw1@127.0.0.1:5432/db?sslmode=require&PassWord=x",
            "postgresql+psycopg2://alice:***@127.0.0.1:5432/db?sslmode=require&PassWord=***",
        ),
        ("postgresql://u:pa@ss@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
        ("redis://:rpw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("https://u:opw@127.0.0.1/api", "https://u:***@127.0.0.1/api"),
        (
            "s3://bucket/p?X-Amz-Signature=abc&sig=def&api_key=k&access_token=t&pwd=p&flag",
            "s3://bucket/p?X-Amz-Signature=***&sig=***&api_key=***&access_token=***&pwd=***&flag",
        ),
        ("sqlite:////tmp/warehouse.db", "sqlite:////tmp/warehouse.db"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("#risk-model-alerts", "#risk-model-alerts"),
        # Malformed or keyword forms, as pasted by hand.
        (" postgresql://alice:qsecret1@127.0.0.1/db", " postgresql://alice:***@127.0.0.1/db"),
        ("postgresql//alice:qsecret1@127.0.0.1/db", "postgresql//alice:***@127.0.0.1/db"),
        (
            "host=127.0.0.1 user=alice password=qsecret1",
            "host=127.0.0.1 user=alice password=***",
        ),
    ],
)
def test_safe_url_hides_secrets(url, shown):
    assert safe_url(url) == shown


def test_settings_command_hides_url_secrets(monkeypatch, capsys):
    monkeypatch.setenv("MLP_DATABASE_URL", "postgresql://alice@127.0.0.1/db?password=qsecret1")
    monkeypatch.setenv("MLP_OPENML_URL", "https://openml-user:osecret2@127.0.0.1/api")
    monkeypatch.setenv("MLP_SLACK_BASE_URL", "http://slack-user:ssecret3@127.0.0.1:20001/api/")
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", "http://ml:msecret4@127.0.0.1:20003")
    monkeypatch.setenv("MLP_SCORING_URL", "http://127.0.0.1:20004/?token=tsecret5")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for secret in ("qsecret1", "osecret2", "ssecret3", "msecret4", "tsecret5"):
        assert secret not in out
    assert "postgresql://alice@127.0.0.1/db?password=***" in out
    assert "https://openml-user:***@127.0.0.1/api" in out
    assert "http://slack-user:***@127.0.0.1:20001/api/" in out


def test_invalid_url_message_hides_password(monkeypatch):
    monkeypatch.setenv("MLP_DATABASE_URL", "mysql://u:dsecret6@127.0.0.1:20002/x")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert "dsecret6" not in str(caught.value)
    assert "value 'mysql://u:***@127.0.0.1:20002/x'" in str(caught.value)


def test_invalid_secret_setting_is_hidden(monkeypatch):
    monkeypatch.setenv("MLP_API_TOKENS", " , ")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert "invalid setting MLP_API_TOKENS: value (hidden): is set but holds no token" in str(
        caught.value
    )


@pytest.mark.parametrize("variable", ["MLP_HOME", "MLP_DATA_DIR", "DAGSTER_HOME", "MLP_SPECS_DIR"])
def test_folder_under_a_file_rejected(monkeypatch, tmp_path, variable):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv(variable, str(blocker / "x"))
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert f"invalid setting {variable}: value '{blocker / 'x'}'" in message
    assert f"cannot be created because {blocker} is not a folder" in message
    assert "point the variable at a path whose parents are folders" in message


def test_status_reports_home_under_a_file(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("MLP_HOME", str(blocker / "x"))
    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: invalid setting MLP_HOME:")
    assert f"because {blocker} is not a folder" in error


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "mysql://u@127.0.0.1:20002/x",
            r"database kind 'mysql' is not supported; the supported kinds are sqlite, "
            r"postgresql, for example sqlite:////path/warehouse.db",
        ),
        ("postgresql+asyncpg://u@127.0.0.1:20002/x", r"driver 'asyncpg' is for asyncio"),
        ("postgresql+nosuch://u@127.0.0.1:20002/x", r"SQLAlchemy has no postgresql driver"),
    ],
)
def test_unsupported_database_rejected(monkeypatch, url, expected):
    monkeypatch.setenv("MLP_DATABASE_URL", url)
    with pytest.raises(
        ConfigurationError, match=r"invalid setting MLP_DATABASE_URL: .*" + expected
    ):
        get_settings()


def test_status_names_supported_databases(monkeypatch, capsys):
    monkeypatch.setenv("MLP_DATABASE_URL", "mysql://u@127.0.0.1:20002/x")
    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert "database kind 'mysql' is not supported" in error
    assert "Traceback" not in error


def test_engine_names_missing_driver():
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed, so its driver is not missing")
    with pytest.raises(
        ConfigurationError,
        match=r"the database driver 'pg8000' for postgresql\+pg8000://u:\*\*\*@127.0.0.1:20002/x "
        r"is not installed \(Python module 'pg8000' is missing\)",
    ):
        get_engine("postgresql+pg8000://u:pw@127.0.0.1:20002/x")


SQLITE_VARIABLES = ["MLP_DATABASE_URL", "MLP_MLFLOW_TRACKING_URI", "MLP_MLFLOW_REGISTRY_URI"]
SQLITE_FIELDS = {
    "MLP_DATABASE_URL": "database_url",
    "MLP_MLFLOW_TRACKING_URI": "mlflow_tracking_uri",
    "MLP_MLFLOW_REGISTRY_URI": "mlflow_registry_uri",
}


@pytest.mark.parametrize("variable", SQLITE_VARIABLES)
def test_sqlite_missing_folder_rejected(monkeypatch, tmp_path, variable):
    missing = tmp_path / "missing" / "dir"
    monkeypatch.setenv(variable, f"sqlite:///{missing / 'store.db'}")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert f"invalid setting {variable}" in message
    assert f"folder {missing} of SQLite database {missing / 'store.db'} does not exist" in message
    assert "create the folder or fix the path" in message


@pytest.mark.parametrize("variable", SQLITE_VARIABLES)
def test_sqlite_folder_path_rejected(monkeypatch, tmp_path, variable):
    monkeypatch.setenv(variable, f"sqlite:///{tmp_path}")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert f"invalid setting {variable}" in message
    assert f"SQLite database path {tmp_path} is a folder" in message
    assert f"for example sqlite:///{tmp_path / 'store.db'}" in message


@pytest.mark.parametrize("variable", SQLITE_VARIABLES)
def test_sqlite_home_or_existing_folder_accepted(monkeypatch, tmp_path, variable):
    under_home = f"sqlite:///{tmp_path / 'mlp-home' / 'new' / 'store.db'}"
    monkeypatch.setenv(variable, under_home)
    assert getattr(get_settings(), SQLITE_FIELDS[variable]) == under_home

    beside = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv(variable, beside)
    assert getattr(get_settings(), SQLITE_FIELDS[variable]) == beside


def test_status_creates_no_sqlite_folder(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "dir"
    monkeypatch.setenv("MLP_DATABASE_URL", f"sqlite:///{missing / 'w.db'}")
    assert main(["status"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()
