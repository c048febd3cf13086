"""The full Evidently HTML drift report of one window, rendered after its figures are stored.

The report contains one Evidently ``ValueDrift`` metric per feature plus one for the score, each
with the method and threshold the spec sets, so its numbers are the figures in ``drift_metrics``.
Building the plots takes several seconds per window (7 to 9 s for 30 columns at 50,000 to
200,000 rows on a shared 2-core machine, ``mlp bench drift``), so it runs after the figures are
written.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlp_orchestration.monitoring import methods
from mlp_orchestration.monitoring.drift import DriftWindow, column_method
from mlp_orchestration.monitoring.reference import OUT_OF_SAMPLE_COLUMN, SCORE_COLUMN, Reference
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import DriftSpec

logger = logging.getLogger(__name__)


def report_path(settings: Settings, model: str, window_start: datetime) -> Path:
    """Return where the HTML report of the window starting at ``window_start`` is kept."""
    stamp = window_start.strftime("%Y%m%dT%H%M%SZ")
    return settings.reports_dir / model / "drift" / f"{stamp}.html"


def build_report_html(
    drift: DriftSpec,
    *,
    columns: list[str],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    title: str,
) -> str:
    """Run Evidently's ``ValueDrift`` on each column (and ``score`` if present); return HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    metrics = []
    for column in columns:
        method, threshold = column_method(drift, column)
        name = methods.evidently_stattest_name(method, drift.bins)
        metrics.append(ValueDrift(column=column, method=name, threshold=threshold))
    numerical = list(columns)
    if SCORE_COLUMN in current.columns and SCORE_COLUMN in reference.columns:
        name = methods.evidently_stattest_name(drift.score_method, drift.bins)
        metrics.append(
            ValueDrift(column=SCORE_COLUMN, method=name, threshold=drift.score_threshold)
        )
        numerical.append(SCORE_COLUMN)
    definition = DataDefinition(numerical_columns=numerical)
    report = Report(metrics, include_tests=True, metadata={"title": title})
    snapshot = report.run(
        Dataset.from_pandas(current[numerical], data_definition=definition),
        Dataset.from_pandas(reference[numerical], data_definition=definition),
        name=title,
    )
    return snapshot.get_html_str(as_iframe=False)


def render_drift_report(
    window: DriftWindow,
    reference: Reference,
    drift: DriftSpec,
    *,
    path: Path,
) -> Path:
    """Write the window's Evidently HTML report to ``path`` (atomically) and return the path."""
    columns = list(window.data.features.columns)
    current = window.data.features.copy()
    current[SCORE_COLUMN] = window.data.scores
    reference_frame = reference.features()
    # Only out-of-sample rows carry a reference score; Evidently leaves NaN out per column.
    reference_frame[SCORE_COLUMN] = np.where(
        reference.frame[OUT_OF_SAMPLE_COLUMN].to_numpy(),
        reference.frame[SCORE_COLUMN].to_numpy(),
        np.nan,
    )
    title = (
        f"{window.model} drift {window.window_start.isoformat()} to "
        f"{window.window_end.isoformat()} against version {reference.version}"
    )
    html = build_report_html(
        drift, columns=columns, reference=reference_frame, current=current, title=title
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)
    logger.info("wrote the drift report of %s to %s", window.model, path)
    return path
