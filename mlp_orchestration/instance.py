"""The Dagster instance under ``DAGSTER_HOME``: its dagster.yaml, and opening it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import dagster as dg

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.settings import PROJECT_DIR, Settings

logger = logging.getLogger(__name__)

# Run config for in-process runs started from the CLI or the demo: Dagster's console logger prints
# every event at DEBUG by default, and every failed step with its stack trace at ERROR, which buries
# the command's own output. The command reports failures itself; the UI keeps the full log.
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

EMBEDDED_CONFIG = PROJECT_DIR / "dagster.yaml"
POSTGRES_CONFIG = PROJECT_DIR / "infra" / "dagster" / "dagster.postgres.yaml"


def instance_config(settings: Settings) -> Path:
    """The dagster.yaml that fits the profile: PostgreSQL storage when DAGSTER_PG_URL is set."""
    source = POSTGRES_CONFIG if settings.dagster_pg_url else EMBEDDED_CONFIG
    if not source.is_file():
        raise ConfigurationError(
            f"Dagster instance config {source} is missing; run from a full checkout of the "
            "project (pip install -e .)"
        )
    return source


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with the profile's dagster.yaml and export DAGSTER_HOME."""
    home = settings.dagster_home_dir
    home.mkdir(parents=True, exist_ok=True)
    source = instance_config(settings)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
        logger.info("Dagster instance config %s written from %s", target, source.name)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """Open the persistent Dagster instance, so runs show up in `dagster dev` afterwards."""
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
