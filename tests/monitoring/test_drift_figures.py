"""Drift figures on real ULB columns at production volume, with and without an injected shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlp_orchestration.monitoring.drift import STATUS_INSUFFICIENT, STATUS_OK, compute_figures
from mlp_orchestration.spec import ModelSpec

WINDOW_ROWS = 50_000
SHIFTED = ["V1", "V4", "V12", "V20", "Amount"]


@pytest.fixture(scope="module")
def samples(ulb_with_time: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint random 50k-row samples of the same two days."""
    order = np.random.default_rng(7).permutation(len(ulb_with_time))
    reference = ulb_with_time.iloc[order[:WINDOW_ROWS]].reset_index(drop=True)
    current = ulb_with_time.iloc[order[WINDOW_ROWS : 2 * WINDOW_ROWS]].reset_index(drop=True)
    return reference, current


def test_unshifted_window_flags_no_column(samples, fraud_spec: ModelSpec):
    reference, current = samples

    figures = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=current,
        columns=fraud_spec.feature_names,
    )

    assert figures.status == STATUS_OK
    assert figures.drifted_columns == []
    assert figures.drift_share == 0.0
    assert figures.dataset_drift is False
    assert len(figures.columns) == 29


def test_quarter_std_shift_flags_exactly_shifted_columns(samples, fraud_spec: ModelSpec):
    reference, current = samples
    shifted = current.copy()
    for column in SHIFTED:
        shifted[column] = shifted[column] + 0.25 * reference[column].std()

    figures = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=shifted,
        columns=fraud_spec.feature_names,
    )

    assert sorted(figures.drifted_columns) == sorted(SHIFTED)
    assert figures.drift_share == pytest.approx(5 / 29)
    by_column = {column.column: column for column in figures.columns}
    assert by_column["Amount"].method == "psi"
    assert by_column["V1"].method == "wasserstein"
    assert by_column["V1"].score == pytest.approx(0.25, abs=0.03)


def test_small_window_has_no_verdict(samples, fraud_spec: ModelSpec):
    reference, current = samples
    min_rows = fraud_spec.monitoring.drift.min_rows

    figures = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=current.iloc[: min_rows - 1],
        columns=fraud_spec.feature_names,
    )

    assert figures.status == STATUS_INSUFFICIENT
    assert figures.drift_detected is None
    assert figures.columns == ()
    assert "insufficient data" in figures.reason


def test_column_without_values_is_left_out_of_share(samples, fraud_spec: ModelSpec):
    reference, current = samples
    current = current.copy()
    current["V2"] = np.nan

    figures = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=current,
        columns=fraud_spec.feature_names,
    )

    by_column = {column.column: column for column in figures.columns}
    assert by_column["V2"].score is None
    assert by_column["V2"].drifted is False
    assert figures.drift_share == 0.0


def test_score_drift_uses_score_method(samples, fraud_spec: ModelSpec):
    reference, current = samples
    rng = np.random.default_rng(3)
    reference_scores = rng.beta(0.5, 20, size=len(reference))

    same = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=current,
        columns=["V3"],
        reference_scores=reference_scores,
        current_scores=rng.beta(0.5, 20, size=len(current)),
    )
    tripled = compute_figures(
        fraud_spec.monitoring.drift,
        reference=reference,
        current=current,
        columns=["V3"],
        reference_scores=reference_scores,
        current_scores=rng.beta(0.5, 20, size=len(current)) * 3,
    )

    assert same.score.method == fraud_spec.monitoring.drift.score_method
    assert same.score.drifted is False
    assert tripled.score.drifted is True
    assert tripled.drift_detected is True
