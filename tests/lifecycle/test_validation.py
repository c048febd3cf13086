"""Snapshot checks: each passes on the real snapshot and fails on a targeted defect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlp_orchestration.features import build_snapshot
from mlp_orchestration.validation import SNAPSHOT_CHECKS, run_snapshot_checks
from mlp_orchestration.warehouse import get_engine


@pytest.fixture(scope="module")
def snapshot(loaded_settings):
    from mlp_orchestration.spec import load_spec_file
    from tests.conftest import FRAUD_SPEC

    spec = load_spec_file(FRAUD_SPEC)
    return build_snapshot(get_engine(loaded_settings.warehouse_url), spec)


def _outcome(frame, spec, bounds, name):
    return SNAPSHOT_CHECKS[name](frame, spec, bounds)


def test_every_check_passes_on_real_snapshot(snapshot, fraud_spec):
    frame, bounds = snapshot
    outcomes = run_snapshot_checks(frame, fraud_spec, bounds)
    failed = [o.message for o in outcomes if not o.passed]
    assert failed == []
    assert {o.name for o in outcomes} == set(SNAPSHOT_CHECKS)
    assert all(o.blocking for o in outcomes)


def _with_extra_column(frame, spec):
    return frame.assign(merchant=1.0)


def _with_bad_label(frame, spec):
    changed = frame.copy()
    changed.loc[5, "Class"] = 2
    return changed


def _with_missing_values(frame, spec):
    changed = frame.copy()
    changed.loc[:99, "V1"] = np.nan
    return changed


def _with_negative_amount(frame, spec):
    changed = frame.copy()
    changed.loc[7, "Amount"] = -5.0
    return changed


def _without_positives(frame, spec):
    return frame.assign(Class=0)


def _holdout_without_positives(frame, spec):
    holdout_start = spec.windows.bounds()["holdout"][0]
    changed = frame.copy()
    changed.loc[changed["event_time"] >= holdout_start, "Class"] = 0
    return changed


def _with_duplicate_id(frame, spec):
    changed = frame.copy()
    changed.loc[1, "transaction_id"] = changed.loc[0, "transaction_id"]
    return changed


def _with_label_copy(frame, spec):
    changed = frame.copy()
    noise = np.random.default_rng(0).normal(0, 0.01, len(frame))
    changed["V3"] = changed["Class"] * 10.0 + noise
    return changed


@pytest.mark.parametrize(
    ("check", "defect", "message"),
    [
        ("schema", _with_extra_column, r"unexpected columns \['merchant'\]"),
        ("types", _with_bad_label, r"label values outside \{0, 1\}: \[2\]"),
        ("missing_rates", _with_missing_values, r"'V1': \{'rate': 0.0006"),
        ("ranges", _with_negative_amount, r"'Amount': \{'below_min': 1"),
        ("label_rate", _without_positives, r"label rate 0.0000% \(allowed 0.0500% to 2.0000%\)"),
        (
            "row_counts",
            _holdout_without_positives,
            r"windows without a positive label: \['holdout'\]",
        ),
        ("duplicate_ids", _with_duplicate_id, r"1 duplicate transaction_id values \(allowed 0\)"),
        ("label_leakage", _with_label_copy, r"correlated with the label at \|r\| >= 0.95: \{'V3'"),
    ],
)
def test_check_fails_on_defect(snapshot, fraud_spec, check, defect, message):
    frame, bounds = snapshot
    outcome = _outcome(defect(frame, fraud_spec), fraud_spec, bounds, check)
    assert not outcome.passed
    assert pd.Series([outcome.message]).str.contains(message, regex=True).all(), outcome.message


def test_check_that_cannot_run_fails_itself(snapshot, fraud_spec):
    frame, bounds = snapshot
    outcomes = {
        o.name: o for o in run_snapshot_checks(frame.drop(columns=["Class"]), fraud_spec, bounds)
    }
    assert not outcomes["label_rate"].passed
    assert "could not run" in outcomes["label_rate"].message
    assert not outcomes["schema"].passed
