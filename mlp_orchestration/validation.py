"""Data checks on a feature snapshot; the Dagster asset checks wrap these one to one.

Each check returns a ``CheckOutcome`` with the measured figures. Blocking checks stop the
lineage downstream of the snapshot when they fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from mlp_orchestration.spec import ModelSpec

LEAKAGE_CORRELATION = 0.95


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    description: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


Check = Callable[[pd.DataFrame, ModelSpec, dict[str, tuple[datetime, datetime]]], CheckOutcome]


def check_schema(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Columns are exactly the spec's key, time, features and label."""
    expected = [spec.entity_key, spec.event_time, *spec.feature_names, spec.label]
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    passed = not missing and not extra
    message = (
        f"all {len(expected)} columns present"
        if passed
        else f"missing columns {missing or 'none'}; unexpected columns {extra or 'none'}"
    )
    return CheckOutcome(
        "schema",
        passed,
        True,
        "Columns are exactly the spec's key, time, features and label.",
        message,
        {"columns": len(frame.columns), "missing": missing, "unexpected": extra},
    )


def check_types(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Features numeric, label 0/1 integers, event time aware UTC."""
    wrong = {}
    for feature in spec.features:
        if feature.name in frame and not ptypes.is_numeric_dtype(frame[feature.name]):
            wrong[feature.name] = str(frame[feature.name].dtype)
    if spec.label in frame and not ptypes.is_integer_dtype(frame[spec.label]):
        wrong[spec.label] = str(frame[spec.label].dtype)
    if spec.event_time in frame and not isinstance(
        frame[spec.event_time].dtype, pd.DatetimeTZDtype
    ):
        wrong[spec.event_time] = str(frame[spec.event_time].dtype)
    labels = set(frame[spec.label].dropna().unique().tolist()) if spec.label in frame else set()
    bad_labels = sorted(labels - {0, 1})
    passed = not wrong and not bad_labels
    message = (
        "types match the spec"
        if passed
        else (
            f"wrong dtypes {wrong or 'none'}; label values outside {{0, 1}}: {bad_labels or 'none'}"
        )
    )
    return CheckOutcome(
        "types",
        passed,
        True,
        "Features numeric, label 0/1 integers, event time aware UTC.",
        message,
        {"wrong_dtypes": wrong, "bad_label_values": bad_labels[:10]},
    )


def check_missing_rates(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Each feature's missing rate within its spec limit; no missing keys or labels."""
    rates = {f.name: float(frame[f.name].isna().mean()) for f in spec.features if f.name in frame}
    over = {
        f.name: {"rate": rates[f.name], "limit": f.max_missing_rate}
        for f in spec.features
        if f.name in rates and rates[f.name] > f.max_missing_rate
    }
    key_missing = int(frame[[spec.entity_key, spec.event_time, spec.label]].isna().sum().sum())
    passed = not over and key_missing == 0
    message = (
        "missing rates within limits"
        if passed
        else (
            f"features over their missing-rate limit: {over or 'none'}; "
            f"missing key, time or label values: {key_missing}"
        )
    )
    return CheckOutcome(
        "missing_rates",
        passed,
        True,
        "Each feature's missing rate within its spec limit.",
        message,
        {"max_rate": max(rates.values(), default=0.0), "over_limit": over},
    )


def check_ranges(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Values finite and within each feature's min and max."""
    violations = {}
    for feature in spec.features:
        if feature.name not in frame:
            continue
        values = frame[feature.name]
        below = int((values < feature.min).sum()) if feature.min is not None else 0
        above = int((values > feature.max).sum()) if feature.max is not None else 0
        infinite = int(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).sum())
        if below or above or infinite:
            violations[feature.name] = {
                "below_min": below,
                "above_max": above,
                "infinite": infinite,
            }
    passed = not violations
    message = "values within the spec's ranges" if passed else f"out of range: {violations}"
    return CheckOutcome(
        "ranges",
        passed,
        True,
        "Values finite and within each feature's min and max.",
        message,
        {"violations": violations},
    )


def check_label_rate(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Share of positive labels within the spec's range."""
    rate = float(frame[spec.label].mean()) if len(frame) else 0.0
    low, high = spec.validation.label_rate_min, spec.validation.label_rate_max
    passed = low <= rate <= high
    message = f"label rate {rate:.4%} (allowed {low:.4%} to {high:.4%})"
    return CheckOutcome(
        "label_rate",
        passed,
        True,
        "Share of positive labels within the spec's range.",
        message,
        {"label_rate": rate, "min": low, "max": high},
    )


def check_row_counts(
    frame: pd.DataFrame, spec: ModelSpec, bounds: dict[str, tuple[datetime, datetime]]
) -> CheckOutcome:
    """Enough rows, and positives in every time window."""
    times = frame[spec.event_time]
    counts = {}
    positives = {}
    for split, (start, end) in bounds.items():
        mask = (times >= start) & (times < end)
        counts[split] = int(mask.sum())
        positives[split] = int(frame.loc[mask, spec.label].sum())
    short = [s for s, n in positives.items() if n == 0]
    passed = len(frame) >= spec.validation.min_rows and not short
    message = (
        f"{len(frame):,} rows (minimum {spec.validation.min_rows:,}); rows per window {counts}; "
        f"positives per window {positives}"
    )
    if short:
        message += f"; windows without a positive label: {short}"
    return CheckOutcome(
        "row_counts",
        passed,
        True,
        "Enough rows, and positives in every time window.",
        message,
        {"rows": len(frame), "rows_per_window": counts, "positives": positives},
    )


def check_duplicate_ids(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Entity keys unique within the snapshot."""
    duplicates = int(frame[spec.entity_key].duplicated().sum())
    limit = spec.validation.max_duplicate_ids
    passed = duplicates <= limit
    return CheckOutcome(
        "duplicate_ids",
        passed,
        True,
        "Entity keys unique within the snapshot.",
        f"{duplicates} duplicate {spec.entity_key} values (allowed {limit})",
        {"duplicates": duplicates, "limit": limit},
    )


def check_label_leakage(frame: pd.DataFrame, spec: ModelSpec, bounds: Any) -> CheckOutcome:
    """Fail when the label, or a near copy of it, is among the features."""
    named = spec.label in spec.feature_names
    label = frame[spec.label].astype(float)
    suspicious = {}
    if label.std() > 0:
        for name in spec.feature_names:
            values = frame[name].astype(float)
            if values.std() == 0 or values.isna().all():
                continue
            correlation = float(np.corrcoef(values.fillna(values.mean()), label)[0, 1])
            if abs(correlation) >= LEAKAGE_CORRELATION:
                suspicious[name] = round(correlation, 4)
    passed = not named and not suspicious
    message = (
        "no feature is the label or a near copy of it"
        if passed
        else (
            f"label among the features: {named}; features correlated with the label at "
            f"|r| >= {LEAKAGE_CORRELATION}: {suspicious or 'none'}"
        )
    )
    return CheckOutcome(
        "label_leakage",
        passed,
        True,
        "The label is not a feature, directly or nearly.",
        message,
        {"label_is_feature": named, "correlated_features": suspicious},
    )


SNAPSHOT_CHECKS: dict[str, Check] = {
    "schema": check_schema,
    "types": check_types,
    "missing_rates": check_missing_rates,
    "ranges": check_ranges,
    "label_rate": check_label_rate,
    "row_counts": check_row_counts,
    "duplicate_ids": check_duplicate_ids,
    "label_leakage": check_label_leakage,
}


def run_snapshot_checks(
    frame: pd.DataFrame, spec: ModelSpec, bounds: dict[str, tuple[datetime, datetime]]
) -> list[CheckOutcome]:
    """Run every snapshot check; a check that cannot run because of the schema fails itself."""
    outcomes = []
    for name, check in SNAPSHOT_CHECKS.items():
        try:
            outcomes.append(check(frame, spec, bounds))
        except (KeyError, TypeError, ValueError) as exc:
            outcomes.append(
                CheckOutcome(
                    name,
                    False,
                    True,
                    check.__doc__ or name,
                    f"check could not run on this snapshot: {exc!r}",
                )
            )
    return outcomes
