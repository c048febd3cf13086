"""Links into the Dagster UI for alerts.

MLflow links come from ``registry.run_url`` and ``registry.version_url``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from mlp_orchestration.settings import Settings


def dagster_run_url(settings: Settings, run_id: str) -> str:
    """Return the Dagster UI page of one run, e.g. ``http://127.0.0.1:3000/runs/<run_id>``."""
    return f"{settings.dagster_ui_url.rstrip('/')}/runs/{quote(run_id, safe='')}"


def dagster_asset_url(settings: Settings, asset_path: Sequence[str]) -> str:
    """Return the Dagster UI page of an asset from its key path, URL-quoting each part.

    For ``["fraud", "drift_report"]`` that is ``<dagster_ui_url>/assets/fraud/drift_report``.
    """
    path = "/".join(quote(part, safe="") for part in asset_path)
    return f"{settings.dagster_ui_url.rstrip('/')}/assets/{path}"
