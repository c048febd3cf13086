"""Where the scoring service keeps its files, derived from the project's Settings.

Every tunable value (limits, queue sizes, poll interval, tokens) is a field of
``mlp_orchestration.settings.Settings``; this module only derives paths from it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlp_orchestration.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def cache_dir(settings: Settings) -> Path:
    """Return the folder that holds downloaded model files, one per model version."""
    return settings.home_dir / "serving-cache"


def multiprocess_dir(settings: Settings, port: int) -> Path:
    """Return the prometheus_client multiprocess folder of the service on ``port``."""
    return settings.home_dir / "serving-metrics" / str(port)


def prepare_multiprocess_dir(settings: Settings, port: int) -> Path:
    """Empty the metrics folder of ``port`` and point PROMETHEUS_MULTIPROC_DIR at it.

    prometheus_client reads the variable when it is first imported, so this must run before
    the worker processes start. Files left by an earlier run would add old counts, hence the wipe.
    """
    folder = multiprocess_dir(settings, port)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))
