"""Delayed-label performance per version and window on the world's real scores and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import average_precision_score

from mlp_orchestration import registry
from mlp_orchestration.monitoring.performance import (
    SOURCE_TAG,
    SOURCE_UNREGISTERED,
    compute_performance,
    decision_thresholds,
    read_labelled_predictions,
    score_window,
)
from mlp_orchestration.settings import get_settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import get_engine, performance_metrics

from .conftest import World


@pytest.fixture
def computed(world_env: World, fraud_spec: ModelSpec):
    settings = get_settings()
    engine = get_engine(settings.warehouse_url)
    windows = compute_performance(fraud_spec, engine=engine, client=registry.configure(settings))
    return {window.window_start.hour: window for window in windows}


def test_labelled_window_is_scored_at_tag_threshold(computed, world_env: World):
    window = computed[0]
    frame = read_labelled_predictions(
        get_engine(get_settings().warehouse_url),
        "fraud",
        start=window.window_start,
        end=window.window_end,
    )
    truth = frame["label"].to_numpy(dtype=int)
    scores = frame["score"].to_numpy()
    flagged = scores >= world_env.booster_threshold

    assert window.complete is True
    assert window.label_coverage == 1.0
    assert window.rows == len(world_env.hours[0])
    assert window.positives == int(world_env.hours[0]["Class"].sum())
    assert window.threshold == world_env.booster_threshold
    assert window.threshold_source == SOURCE_TAG
    assert window.pr_auc == pytest.approx(average_precision_score(truth, scores))
    assert window.recall_at_alert_rate == pytest.approx(flagged[truth == 1].mean())
    if flagged.any():
        assert window.precision_at_alert_rate == pytest.approx(truth[flagged].mean())


def test_window_missing_labels_is_incomplete_not_bad(computed):
    half = computed[2]
    none = computed[3]

    assert half.label_coverage == pytest.approx(0.5, abs=0.01)
    assert half.complete is False
    assert half.pr_auc is None
    assert half.recall_at_alert_rate is None
    assert none.label_coverage == 0.0
    assert none.complete is False


def test_performance_rows_are_upserted(computed, world_env: World, fraud_spec: ModelSpec):
    settings = get_settings()
    engine = get_engine(settings.warehouse_url)
    compute_performance(fraud_spec, engine=engine, client=registry.configure(settings))

    with engine.connect() as conn:
        rows = conn.execute(sa.select(performance_metrics)).all()
    assert len(rows) == 4
    assert {row.model_version for row in rows} == {world_env.version}
    assert sorted(row.complete for row in rows) == [False, False, True, True]


def test_missing_threshold_falls_back_to_alert_rate_share():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"score": rng.random(1_000), "label": (rng.random(1_000) < 0.05).astype(float)}
    )

    figures = score_window(frame, min_label_coverage=0.9, alert_rate=0.01, threshold=None)

    assert figures["threshold"] == pytest.approx(np.quantile(frame["score"], 0.99))
    assert figures["complete"] is True
    assert figures["precision_at_alert_rate"] is not None


def test_unregistered_version_says_so(world_env: World):
    client = registry.configure(get_settings())

    thresholds = decision_thresholds(client, "fraud", [world_env.version, "999"])

    assert thresholds[world_env.version] == (world_env.booster_threshold, SOURCE_TAG)
    assert thresholds["999"] == (None, SOURCE_UNREGISTERED)
