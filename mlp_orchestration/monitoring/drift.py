"""Data and score drift of one prediction-log window against the champion's reference.

The figures come from Evidently's stat-test registry, one method per column as the spec sets it
(see ``methods``), computed straight on the columns: no preset, no extra metrics, no plots. They
are written to ``drift_metrics`` before the HTML report is rendered (``report.py``). The report's
plots cost several seconds per window, and the retrain sensor needs only the figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.monitoring import methods
from mlp_orchestration.monitoring.reference import Reference
from mlp_orchestration.monitoring.store import upsert
from mlp_orchestration.monitoring.window import WindowData, read_window
from mlp_orchestration.spec import DriftMethod, DriftSpec, ModelSpec
from mlp_orchestration.warehouse import drift_metrics, utcnow

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift score under its method and threshold."""

    column: str
    method: DriftMethod
    threshold: float
    score: float | None  # None when either side has no finite value
    drifted: bool


@dataclass(frozen=True)
class DriftFigures:
    """The summary figures of one window; only a ``status`` of ``ok`` carries a verdict."""

    status: str
    rows: int
    reference_rows: int
    min_rows: int
    share_threshold: float
    columns: tuple[ColumnDrift, ...] = ()
    score: ColumnDrift | None = None
    drift_share: float | None = None
    dataset_drift: bool | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [column.column for column in self.columns if column.drifted]

    @property
    def drift_detected(self) -> bool | None:
        """True when the share of drifted columns or the score drifts; None without a verdict."""
        if self.status != STATUS_OK:
            return None
        return bool(self.dataset_drift) or bool(self.score is not None and self.score.drifted)

    @property
    def reason(self) -> str:
        if self.status == STATUS_INSUFFICIENT:
            return (
                f"insufficient data: {self.rows} rows in the window, fewer than min_rows "
                f"{self.min_rows}; no verdict"
            )
        parts = [
            f"{len(self.drifted_columns)} of {len(self.columns)} columns drifted "
            f"(share {self.drift_share:.2f}, window threshold {self.share_threshold:.2f})"
        ]
        if self.score is not None and self.score.score is not None:
            parts.append(
                f"score {self.score.method} {self.score.score:.3f} "
                f"(threshold {self.score.threshold:g})"
            )
        return "; ".join(parts)


def column_method(drift: DriftSpec, column: str) -> tuple[DriftMethod, float]:
    """Return the method and threshold the spec sets for a column."""
    override = drift.columns.get(column)
    if override is not None:
        return override.method, override.threshold
    return drift.method, drift.threshold


def _column_drift(
    column: str,
    method: DriftMethod,
    threshold: float,
    *,
    reference: np.ndarray,
    current: np.ndarray,
    bins: int,
) -> ColumnDrift:
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if reference.size == 0 or current.size == 0:
        return ColumnDrift(column, method, threshold, None, False)
    score, drifted = methods.run_stattest(
        method, reference=reference, current=current, threshold=threshold, bins=bins
    )
    return ColumnDrift(column, method, threshold, score, drifted)


def compute_figures(
    drift: DriftSpec,
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    reference_scores: np.ndarray | None = None,
    current_scores: np.ndarray | None = None,
) -> DriftFigures:
    """Score each column's drift with the spec's method and decide the window's verdict.

    A window with fewer rows than ``drift.min_rows`` gets the status ``insufficient_data`` and no
    verdict. A column whose values are all missing on one side is reported without a score and
    does not count in the drift share.
    """
    base = {
        "rows": len(current),
        "reference_rows": len(reference),
        "min_rows": drift.min_rows,
        "share_threshold": drift.drift_share,
    }
    if len(current) < drift.min_rows:
        return DriftFigures(status=STATUS_INSUFFICIENT, **base)
    results = []
    for column in columns:
        method, threshold = column_method(drift, column)
        results.append(
            _column_drift(
                column,
                method,
                threshold,
                reference=reference[column].to_numpy(dtype=np.float64),
                current=current[column].to_numpy(dtype=np.float64),
                bins=drift.bins,
            )
        )
    scored = [result for result in results if result.score is not None]
    if not scored:
        return DriftFigures(status=STATUS_INSUFFICIENT, columns=tuple(results), **base)
    share = sum(result.drifted for result in scored) / len(scored)
    score_drift = None
    if reference_scores is not None and current_scores is not None:
        score_drift = _column_drift(
            "score",
            drift.score_method,
            drift.score_threshold,
            reference=np.asarray(reference_scores, dtype=np.float64),
            current=np.asarray(current_scores, dtype=np.float64),
            bins=drift.bins,
        )
    return DriftFigures(
        status=STATUS_OK,
        columns=tuple(results),
        score=score_drift,
        drift_share=share,
        dataset_drift=share >= drift.drift_share,
        **base,
    )


@dataclass(frozen=True)
class DriftWindow:
    """The drift figures of one window, with the data they were computed on."""

    model: str
    window_start: datetime
    window_end: datetime
    figures: DriftFigures
    reference_version: str
    reference_hash: str
    computed_at: datetime
    data: WindowData = field(repr=False)

    def as_metadata(self) -> dict[str, Any]:
        """Plain, JSON-friendly figures; the retrain sensor reads these keys back."""
        figures = self.figures
        score = figures.score
        return {
            "status": figures.status,
            "drift_detected": figures.drift_detected,
            "reason": figures.reason,
            "rows": figures.rows,
            "reference_rows": figures.reference_rows,
            "drift_share": figures.drift_share,
            "dataset_drift": figures.dataset_drift,
            "drifted_columns": figures.drifted_columns,
            "column_scores": {
                column.column: column.score
                for column in figures.columns
                if column.score is not None
            },
            "score_drift": score.score if score is not None else None,
            "score_drifted": score.drifted if score is not None else None,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "reference_version": self.reference_version,
            "reference_hash": self.reference_hash,
        }


def compute_window(
    spec: ModelSpec,
    *,
    engine: Engine,
    reference: Reference,
    window_start: datetime,
    window_end: datetime,
) -> DriftWindow:
    """Compute one window's drift figures and upsert them into ``drift_metrics``.

    The row's ``report_path`` is cleared here and set by ``record_report_path`` once the HTML
    report exists, so the table never points at a report of older figures.
    """
    data = read_window(
        engine,
        model=spec.name,
        feature_names=spec.feature_names,
        start=window_start,
        end=window_end,
    )
    figures = compute_figures(
        spec.monitoring.drift,
        reference=reference.features(),
        current=data.features,
        columns=spec.feature_names,
        reference_scores=reference.scores(),
        current_scores=data.scores,
    )
    window = DriftWindow(
        model=spec.name,
        window_start=window_start,
        window_end=window_end,
        figures=figures,
        reference_version=reference.version,
        reference_hash=reference.snapshot_hash,
        computed_at=utcnow(),
        data=data,
    )
    _record(engine, window)
    logger.info(
        "drift of %s in [%s, %s): %s",
        spec.name,
        window_start.isoformat(),
        window_end.isoformat(),
        figures.reason,
    )
    return window


def _record(engine: Engine, window: DriftWindow) -> None:
    figures = window.figures
    metadata = window.as_metadata()
    row = {
        "model": window.model,
        "window_start": window.window_start,
        "window_end": window.window_end,
        "rows": figures.rows,
        "status": figures.status,
        "drift_share": figures.drift_share,
        "dataset_drift": figures.dataset_drift,
        "drifted_columns": metadata["drifted_columns"],
        "column_scores": {
            column.column: {
                "method": column.method,
                "threshold": column.threshold,
                "score": column.score,
                "drifted": column.drifted,
            }
            for column in figures.columns
        },
        "score_drift": metadata["score_drift"],
        "score_drifted": metadata["score_drifted"],
        "reference_hash": window.reference_hash,
        "report_path": None,
        "computed_at": window.computed_at,
    }
    with engine.begin() as conn:
        upsert(conn, drift_metrics, [row], key_columns=["model", "window_start"])


def record_report_path(engine: Engine, window: DriftWindow, path: Path) -> None:
    """Point the window's ``drift_metrics`` row at its HTML report."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(drift_metrics)
            .where(drift_metrics.c.model == window.model)
            .where(drift_metrics.c.window_start == window.window_start)
            .values(report_path=str(path))
        )
