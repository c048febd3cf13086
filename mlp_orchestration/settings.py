"""Every setting of the control plane and the scoring service, declared once.

Each field is read from the environment variable named in its alias. Defaults form the embedded
profile: every store lives under ``MLP_HOME`` and nothing needs a running service. Setting the
service variables (PostgreSQL, Redis, Slack) switches to the services profile with the same code.
"""

from __future__ import annotations

import functools
import getpass
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlp_orchestration.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent

# Database kinds the warehouse and routing store are written and tested for.
DATABASE_KINDS = ("sqlite", "postgresql")
DATABASE_URL_EXAMPLES = (
    "sqlite:////path/warehouse.db or postgresql+psycopg2://user@host:5432/database"
)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Settings(BaseSettings):
    """Settings of one process, read from the environment."""

    # populate_by_name lets code and tests pass fields by name. It also makes pydantic-settings
    # read variables named like the fields, so the MLP_ prefix is needed: without it, HOME
    # would set `home` and MLP_HOME would default to the user's home folder.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, env_prefix="MLP_"
    )

    home: Path = Field(
        Path(".mlp"),
        alias="MLP_HOME",
        description="Folder for every local store: warehouse, MLflow, Dagster, snapshots, reports.",
    )
    data_dir: Path | None = Field(
        None,
        alias="MLP_DATA_DIR",
        description="Folder with the dataset copies; defaults to $MLP_HOME/data.",
    )
    database_url: str | None = Field(
        None,
        alias="MLP_DATABASE_URL",
        description="SQLAlchemy URL of the warehouse and routing store; defaults to SQLite "
        "at $MLP_HOME/warehouse.db.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLP_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI; defaults to SQLite at $MLP_HOME/mlflow/mlflow.db.",
    )
    mlflow_registry_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLP_MLFLOW_REGISTRY_URI", "MLFLOW_REGISTRY_URI"),
        description="MLflow Model Registry URI; defaults to the tracking URI.",
    )
    mlflow_artifact_root: str | None = Field(
        None,
        alias="MLP_MLFLOW_ARTIFACT_ROOT",
        description="Artifact location for new MLflow experiments; defaults to "
        "$MLP_HOME/mlflow/artifacts.",
    )
    dagster_home: Path | None = Field(
        None,
        alias="DAGSTER_HOME",
        description="Dagster instance folder; defaults to $MLP_HOME/dagster. PostgreSQL storage "
        "is used when DAGSTER_PG_URL is set.",
    )
    dagster_pg_url: SecretStr | None = Field(
        None,
        alias="DAGSTER_PG_URL",
        description="PostgreSQL URL for Dagster's run, event log and schedule storage.",
    )
    dagster_executor: Literal["in_process", "multiprocess"] = Field(
        "in_process",
        alias="MLP_DAGSTER_EXECUTOR",
        description="Dagster executor for jobs: in_process (embedded profile; a step costs "
        "milliseconds) or multiprocess (one process per step).",
    )
    redis_url: str | None = Field(
        None,
        alias="MLP_REDIS_URL",
        description="Redis URL; when set, routing changes are also published for fan-out.",
    )
    specs_dir: Path = Field(
        PACKAGE_DIR / "specs",
        alias="MLP_SPECS_DIR",
        description="Folder of model spec YAML files, one per model.",
    )
    ulb_start: datetime = Field(
        datetime(2013, 9, 1, tzinfo=UTC),
        alias="MLP_ULB_START",
        description="Calendar time of the ULB dataset's Time=0 (ISO 8601, UTC if no offset).",
    )
    openml_url: str = Field(
        "https://api.openml.org",
        alias="MLP_OPENML_URL",
        description="OpenML API base URL used to fetch a dataset missing from MLP_DATA_DIR.",
    )
    download_timeout_s: float = Field(
        60.0,
        alias="MLP_DOWNLOAD_TIMEOUT_S",
        gt=0,
        description="Seconds to wait for a dataset server before giving up.",
    )
    actor: str = Field(
        default_factory=_default_actor,
        alias="MLP_ACTOR",
        description="Name recorded as 'who' in routing history and registry tags.",
    )
    routing_poll_s: float = Field(
        2.0,
        alias="MLP_ROUTING_POLL_S",
        gt=0,
        le=300,
        description="Seconds between the scoring service's routing store polls.",
    )
    api_tokens: SecretStr | None = Field(
        None,
        alias="MLP_API_TOKENS",
        description="Comma-separated bearer tokens; when set, every /v1 route needs one.",
    )
    slack_token: SecretStr | None = Field(
        None,
        alias="MLP_SLACK_TOKEN",
        description="Slack bot token; without it alerts go to the log.",
    )
    slack_channel: str = Field(
        "#risk-model-alerts",
        alias="MLP_SLACK_CHANNEL",
        description="Slack channel that receives alerts.",
    )
    slack_base_url: str = Field(
        "https://slack.com/api/",
        alias="MLP_SLACK_BASE_URL",
        description="Slack Web API base URL (a local fake in tests).",
    )
    alert_dedup_s: float = Field(
        900.0,
        alias="MLP_ALERT_DEDUP_S",
        ge=0,
        description="Seconds within which an identical alert is sent only once.",
    )
    dagster_ui_url: str = Field(
        "http://127.0.0.1:3000",
        alias="MLP_DAGSTER_UI_URL",
        description="Dagster UI address used in links (alerts, summaries).",
    )
    mlflow_ui_url: str = Field(
        "http://127.0.0.1:5000",
        alias="MLP_MLFLOW_UI_URL",
        description="MLflow UI address used in links to runs and model versions.",
    )
    scoring_url: str = Field(
        "http://127.0.0.1:8080",
        alias="MLP_SCORING_URL",
        description="Scoring service address used by replay and rollout checks.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        alias="MLP_MAX_BODY_BYTES",
        ge=1024,
        description="Largest request body the scoring service accepts, in bytes; larger get 413.",
    )
    max_batch: int = Field(
        1000,
        alias="MLP_MAX_BATCH",
        ge=1,
        le=100_000,
        description="Maximum records in one batch scoring request; more get 413.",
    )
    shadow_queue_size: int = Field(
        10_000,
        alias="MLP_SHADOW_QUEUE",
        ge=1,
        description="Shadow scoring jobs the scoring service queues; when full, new ones are "
        "dropped and counted.",
    )
    predlog_batch_size: int = Field(
        500,
        alias="MLP_PREDLOG_BATCH",
        ge=1,
        le=50_000,
        description="Prediction log rows written per database insert.",
    )
    predlog_buffer_size: int = Field(
        200_000,
        alias="MLP_PREDLOG_BUFFER",
        ge=1,
        description="Prediction log rows buffered while the database is unreachable; beyond "
        "that the oldest are dropped and counted.",
    )
    predlog_flush_s: float = Field(
        0.5,
        alias="MLP_PREDLOG_FLUSH_S",
        gt=0,
        le=60,
        description="Seconds between prediction log writes when fewer than a batch are waiting.",
    )
    predlog_stop_timeout_s: float = Field(
        30.0,
        alias="MLP_PREDLOG_STOP_TIMEOUT_S",
        ge=0,
        description="Seconds a stopping scoring service keeps retrying to write buffered "
        "prediction log rows before it gives up on them.",
    )

    @field_validator("home", "data_dir", "dagster_home", "specs_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{value} is not a folder; point the variable at a folder")
        blocker = _non_folder_ancestor(path)
        if blocker is not None:
            raise ValueError(
                f"folder {value} cannot be created because {blocker} is not a folder; point "
                "the variable at a path whose parents are folders"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            url = sa.engine.make_url(value)
        except sa.exc.ArgumentError:
            raise ValueError(
                f"not an SQLAlchemy URL; use for example {DATABASE_URL_EXAMPLES}"
            ) from None
        _check_database_kind(url)
        _check_sqlite_path(value, info.data.get("home"))
        return value

    @field_validator("mlflow_tracking_uri", "mlflow_registry_uri")
    @classmethod
    def _mlflow_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _check_sqlite_path(value, info.data.get("home"))
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            tokens = [t.strip() for t in value.get_secret_value().split(",") if t.strip()]
            if not tokens:
                # An empty list would silently turn authentication off.
                raise ValueError("is set but holds no token; unset it or list the tokens")
        return value

    @field_validator("ulb_start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def data_path(self) -> Path:
        return (self.data_dir or self.home_dir / "data").expanduser().resolve()

    @property
    def warehouse_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'warehouse.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        return self.mlflow_registry_uri or self.tracking_uri

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home_dir / "mlflow" / "artifacts").as_uri()

    @property
    def dagster_home_dir(self) -> Path:
        return (self.dagster_home or self.home_dir / "dagster").expanduser().resolve()

    @property
    def snapshots_dir(self) -> Path:
        return self.home_dir / "snapshots"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    def api_token_list(self) -> list[str]:
        if self.api_tokens is None:
            return []
        raw = self.api_tokens.get_secret_value()
        return [token.strip() for token in raw.split(",") if token.strip()]


def _non_folder_ancestor(path: Path) -> Path | None:
    """Return the nearest existing ancestor of the path when it is not a folder, else None."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _check_database_kind(url: sa.engine.URL) -> None:
    backend = url.get_backend_name()
    if backend not in DATABASE_KINDS:
        raise ValueError(
            f"database kind {backend!r} is not supported; the supported kinds are "
            f"{', '.join(DATABASE_KINDS)}, for example {DATABASE_URL_EXAMPLES}"
        )
    try:
        dialect = url.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise ValueError(
            f"SQLAlchemy has no {backend} driver named {url.get_driver_name()!r}; leave the "
            f"driver out or use a known one, for example {DATABASE_URL_EXAMPLES}"
        ) from None
    if dialect.is_async:
        raise ValueError(
            f"driver {url.get_driver_name()!r} is for asyncio, but the control plane uses "
            f"synchronous SQLAlchemy; use for example {DATABASE_URL_EXAMPLES}"
        )


def _check_sqlite_path(url: str, home: Path | None) -> None:
    """Reject a SQLite database path that is a folder, or outside MLP_HOME in a missing folder.

    Folders under MLP_HOME are created on first use, so the embedded profile works on a fresh
    machine. Elsewhere a missing folder is more likely a typo, and creating it would start a
    new, empty store in silence.
    """
    if not url.startswith("sqlite:"):
        return
    try:
        database = sa.engine.make_url(url).database
    except sa.exc.ArgumentError:
        return
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).resolve()
    if path.is_dir():
        raise ValueError(
            f"SQLite database path {path} is a folder; point the URL at a file, for example "
            f"sqlite:///{path / 'store.db'}"
        )
    if home is None:
        # MLP_HOME itself is invalid and reported on its own.
        return
    home_dir = home.expanduser().resolve()
    if path.is_relative_to(home_dir) or path.parent.is_dir():
        return
    raise ValueError(
        f"folder {path.parent} of SQLite database {path} does not exist, and only folders "
        f"under MLP_HOME ({home_dir}) are created; create the folder or fix the path"
    )


@functools.cache
def _cached_settings(environ_key: frozenset[tuple[str, str]]) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(_describe_invalid(exc)) from None


def _describe_invalid(error: ValidationError) -> str:
    # pydantic-settings reports the environment variable it read (MLP_HOME); a field set by name
    # in code is reported by its name (home).
    fields: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        fields[name] = field
        for variable in _variable(name, field).split(" or "):
            fields[variable] = field
    lines = []
    for item in error.errors():
        key = str(item["loc"][0]) if item["loc"] else "?"
        field = fields.get(key)
        variable = _variable(key, field) if key in Settings.model_fields else key
        message = item["msg"].removeprefix("Value error, ")
        secret = field is not None and "SecretStr" in str(field.annotation)
        value = item.get("input")
        if secret:
            shown = "(hidden)"
        elif isinstance(value, str):
            shown = repr(safe_url(value))
        else:
            shown = repr(value)
        lines.append(f"invalid setting {variable}: value {shown}: {message}")
    return "; ".join(lines) + ". Fix the environment variable (see `mlp settings`)."


def get_settings() -> Settings:
    """Return the settings for the current environment, cached per distinct environment."""
    relevant = frozenset(
        (key, value)
        for key, value in os.environ.items()
        if key.startswith(("MLP_", "MLFLOW_", "DAGSTER_"))
    )
    return _cached_settings(relevant)


# Names of secret ``name=value`` pairs (query parameters, libpq keywords): names containing one of
# these words, or exactly "sig" (the signature of Azure shared access URLs).
_SECRET_PARAMETER_WORDS = ("password", "passwd", "pwd", "token", "secret", "key", "signature")
_TEXT_SECRET_PAIR = re.compile(
    rf"(?P<name>\b[\w.\-]*(?:{'|'.join(_SECRET_PARAMETER_WORDS)})[\w.\-]*|\bsig)"
    r"(?P<equals>\s*=\s*)[^&\s'\"]+",
    re.IGNORECASE,
)
# scheme://user:password@ at the start of a URL. The password runs to the last @ before the path,
# or, when it contains a raw / or ?, to the next @ as SQLAlchemy's URL parser reads it. Either way
# all of it is hidden.
_USERINFO_PASSWORD = re.compile(
    r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*:)(?:[^/?#]*|[^@]*)@"
)
# The same anywhere in free text, also with the scheme's colon missing (a common typo).
_TEXT_USERINFO = re.compile(r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*:?//[^:/?#@\s]*:)[^@\s]*@")


def safe_url(url: str) -> str:
    """Return the URL with its password and secret query values replaced by ***.

    Hides the password in the user information (``user:password@``) and the value of every
    ``name=value`` pair whose name contains password, passwd, pwd, token, secret, key or
    signature. Text that is not a well-formed URL is masked the same way.
    """
    return hide_secrets(_USERINFO_PASSWORD.sub(r"\g<prefix>***@", url, count=1))


def hide_secrets(text: str) -> str:
    """Return the text with URL passwords and secret ``name=value`` pairs replaced by ***."""
    text = _TEXT_USERINFO.sub(r"\g<prefix>***@", text)
    return _TEXT_SECRET_PAIR.sub(r"\g<name>\g<equals>***", text)


def resolved_settings(settings: Settings) -> dict[str, str]:
    """Every setting's value in this environment, secrets hidden and defaults filled in."""
    values: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "(set, hidden)"
        elif value is None:
            shown = "(unset)"
        elif isinstance(value, str):
            # Every text setting goes through safe_url, so a URL added later is masked too.
            shown = safe_url(value)
        else:
            shown = str(value)
        values[_variable(name, field)] = shown
    values.update({
        "MLP_HOME": str(settings.home_dir),
        "MLP_DATA_DIR": str(settings.data_path),
        "MLP_DATABASE_URL": safe_url(settings.warehouse_url),
        "MLP_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI": safe_url(settings.tracking_uri),
        "MLP_MLFLOW_REGISTRY_URI or MLFLOW_REGISTRY_URI": safe_url(settings.registry_uri),
        "MLP_MLFLOW_ARTIFACT_ROOT": safe_url(settings.artifact_root),
        "DAGSTER_HOME": str(settings.dagster_home_dir),
        "MLP_REDIS_URL": safe_url(settings.redis_url) if settings.redis_url else "(unset)",
    })  # fmt: skip
    return values


def _variable(name: str, field: Any) -> str:
    if isinstance(field.validation_alias, AliasChoices):
        return " or ".join(str(choice) for choice in field.validation_alias.choices)
    return field.alias or name


def describe_settings() -> list[dict[str, str]]:
    """List every setting with its environment variable, type, default and description."""
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "(computed)"
        elif field.default is None:
            default = "(unset)"
        else:
            default = str(field.default)
        rows.append(
            {
                "env": _variable(name, field),
                "type": _type_name(field.annotation),
                "default": default,
                "description": field.description or "",
            }
        )
    return rows


def _type_name(annotation: Any) -> str:
    text = str(annotation)
    for noise in ("typing.", "pathlib.", "pydantic.types.", "datetime.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text
