"""Each gate's pass and fail path, on a real candidate trained and registered in MLflow."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlp_orchestration import registry
from mlp_orchestration.evaluation import holdout_frame, training_path_scores
from mlp_orchestration.gates import GateContext
from mlp_orchestration.gates.bias import bias_gate
from mlp_orchestration.gates.consistency import consistency_gate
from mlp_orchestration.gates.novelty import novelty_gate
from mlp_orchestration.gates.performance import performance_gate
from mlp_orchestration.gates.segments import segments_gate
from mlp_orchestration.spec import BiasGateSpec, ModelSpec
from mlp_orchestration.warehouse import get_engine
from tests.conftest import data_dir


def _with_gates(spec: ModelSpec, **changes) -> ModelSpec:
    gates = spec.gates.model_copy(update=changes)
    return spec.model_copy(update={"gates": gates})


@pytest.fixture
def context(loaded_settings, fraud_spec, candidate) -> GateContext:
    holdout = holdout_frame(get_engine(loaded_settings.warehouse_url), fraud_spec, candidate)
    return GateContext(
        settings=loaded_settings,
        spec=fraud_spec,
        candidate=candidate,
        holdout=holdout,
        candidate_scores=training_path_scores(fraud_spec, candidate, holdout),
    )


def test_performance_gate_passes_above_floors(context):
    result = performance_gate(context)
    assert result.passed
    assert [c.check for c in result.checks] == ["holdout_pr_auc", "holdout_roc_auc"]
    assert "no champion yet" in result.notes[0]


def test_performance_gate_fails_below_floor(context):
    floors = context.spec.gates.performance.model_copy(update={"min_pr_auc": 0.99})
    context.spec = _with_gates(context.spec, performance=floors)
    result = performance_gate(context)
    assert not result.passed
    failure = result.failures[0]
    assert failure.check == "holdout_pr_auc"
    assert failure.threshold == 0.99
    assert "holdout PR-AUC is 0.79" in failure.message
    assert "threshold >= 0.9900" in failure.message


def test_performance_gate_fails_against_better_champion(context):
    context.champion_version = "7"
    context.champion_scores = context.labels.astype(float)
    result = performance_gate(context)
    assert not result.passed
    failure = result.failures[0]
    assert failure.check == "pr_auc_vs_champion"
    assert "champion v7's 1.0000 minus tolerance 0.05" in failure.message
    assert failure.threshold == pytest.approx(0.95)


def test_performance_gate_passes_against_equal_champion(context):
    context.champion_version = "7"
    context.champion_scores = context.candidate_scores.copy()
    assert performance_gate(context).passed


def test_performance_gate_rejects_champion_trained_on_holdout(context):
    context.champion_version = "7"
    context.champion_scores = context.candidate_scores.copy()
    context.extra["champion_training_end"] = "2013-09-01T22:00:00+00:00"
    result = performance_gate(context)
    assert not result.passed
    assert result.failures[0].check == "champion_holdout_overlap_hours"
    assert result.failures[0].value == pytest.approx(2.0)
    assert "train the candidate with a later as_of" in result.failures[0].message


def test_segments_gate_passes_and_reports_small_groups(context):
    result = segments_gate(context)
    assert result.passed
    assert any(c.check == "segment_pr_auc[amount_band=under_10]" for c in result.checks)
    assert any("time_of_day=night" in note and "not gated" in note for note in result.notes)


def test_segments_gate_fails_below_floor(context):
    floor = context.spec.gates.segments.model_copy(update={"min_pr_auc": 0.99})
    context.spec = _with_gates(context.spec, segments=floor)
    result = segments_gate(context)
    assert not result.passed
    assert all(check.check.startswith("segment_pr_auc[") for check in result.failures)
    assert "threshold >= 0.9900" in result.failures[0].message


def test_consistency_gate_reproduces_training_scores_exactly(context):
    result = consistency_gate(context)
    assert result.passed, [c.message for c in result.failures]
    reload = result.checks[0]
    assert reload.check == "registry_reload_max_abs_diff"
    assert reload.value == 0.0


def test_consistency_gate_fails_on_any_difference(context):
    context.candidate_scores = context.candidate_scores.copy()
    context.candidate_scores[3] += 1e-12
    result = consistency_gate(context)
    assert not result.passed
    failure = result.failures[0]
    assert failure.check == "registry_reload_max_abs_diff"
    assert failure.value == pytest.approx(1e-12, rel=0.01)
    assert "threshold <= 0.0000" in failure.message


def test_consistency_gate_fails_when_spec_features_differ(context):
    reordered = list(reversed(context.spec.features))
    context.spec = context.spec.model_copy(update={"features": reordered})
    result = consistency_gate(context)
    failed = {c.check for c in result.failures}
    assert "model_features_match_spec" in failed
    assert "signature_matches_spec" in failed


@pytest.fixture(scope="module")
def credit_default() -> tuple[pd.DataFrame, np.ndarray]:
    """Taiwan credit-default clients with scores from a small LightGBM model."""
    path = data_dir() / "uci-taiwan-credit-default" / "default_of_credit_card_clients.parquet"
    frame = pd.read_parquet(path).rename(columns={"default.payment.next.month": "Class"})
    features = [c for c in frame.columns if c not in ("ID", "Class", "SEX")]
    train, holdout = frame.iloc[:20_000], frame.iloc[20_000:].reset_index(drop=True)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 1, "num_threads": 1},
        lgb.Dataset(train[features], train["Class"]),
        50,
    )
    return holdout, booster.predict(holdout[features])


def _bias_context(context: GateContext, credit_default, limits: BiasGateSpec) -> GateContext:
    holdout, scores = credit_default
    spec = context.spec.model_copy(
        update={
            "protected_attributes": ["SEX", "MARRIAGE"],
            "gates": context.spec.gates.model_copy(update={"bias": limits}),
        }
    )
    candidate = context.candidate.__class__(
        **{**context.candidate.__dict__, "decision_threshold": float(np.quantile(scores, 0.78))}
    )
    return GateContext(
        settings=context.settings,
        spec=spec,
        candidate=candidate,
        holdout=holdout,
        candidate_scores=scores,
    )


def test_bias_gate_passes_within_limits(context, credit_default):
    limits = BiasGateSpec(max_tpr_gap=0.5, max_alert_rate_ratio=5.0, min_group_size=100)
    result = bias_gate(_bias_context(context, credit_default, limits))
    assert result.passed
    assert {c.check for c in result.checks} == {
        "tpr_gap[SEX]",
        "alert_rate_ratio[SEX]",
        "tpr_gap[MARRIAGE]",
        "alert_rate_ratio[MARRIAGE]",
    }
    assert any("MARRIAGE=0" in note for note in result.notes)


def test_bias_gate_fails_on_gap(context, credit_default):
    limits = BiasGateSpec(max_tpr_gap=0.001, max_alert_rate_ratio=1.0001, min_group_size=100)
    result = bias_gate(_bias_context(context, credit_default, limits))
    assert not result.passed
    assert "largest true-positive-rate gap across SEX" in result.failures[0].message


def test_bias_gate_skipped_without_protected_attributes(context):
    result = bias_gate(context)
    assert result.passed
    assert result.verdict == "skipped"
    assert result.notes == ["no protected attributes in the spec"]


def test_novelty_gate_fails_for_identical_model(context):
    context.champion_version = "7"
    context.extra["candidate_model_sha256"] = "ab" * 32
    context.extra["champion_model_sha256"] = "ab" * 32
    result = novelty_gate(context)
    assert not result.passed
    assert result.verdict == "failed"
    assert "identical to champion v7" in result.failures[0].message


def test_novelty_gate_passes_for_new_model(context, candidate, loaded_settings):
    tags = registry.get_version(
        registry.configure(loaded_settings), "fraud", candidate.version
    ).tags
    context.champion_version = "7"
    context.extra["candidate_model_sha256"] = tags["model_sha256"]
    context.extra["champion_model_sha256"] = "cd" * 32
    assert len(tags["model_sha256"]) == 64
    assert novelty_gate(context).verdict == "passed"


def test_novelty_gate_skipped_without_champion(context):
    assert novelty_gate(context).verdict == "skipped"


def test_bias_gate_fails_when_a_group_is_never_flagged(context, credit_default):
    holdout, scores = credit_default
    limits = BiasGateSpec(max_tpr_gap=1.0, max_alert_rate_ratio=100.0, min_group_size=100)
    never_flagged = np.where(holdout["SEX"].to_numpy() == 2, 0.0, scores)
    bias_context = _bias_context(context, (holdout, never_flagged), limits)
    result = bias_gate(bias_context)
    assert not result.passed
    failure = next(c for c in result.failures if c.check == "alert_rate_ratio[SEX]")
    assert "groups ['2'] of SEX are never flagged" in failure.message


def test_champion_overlap_counts_only_holdout_hours(context):
    context.champion_version = "7"
    context.champion_scores = context.candidate_scores.copy()
    context.extra["champion_training_end"] = "2013-09-02T02:00:00+00:00"
    overlap = next(
        c for c in performance_gate(context).checks if c.check == "champion_holdout_overlap_hours"
    )
    assert overlap.value == pytest.approx(4.0)
