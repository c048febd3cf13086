"""Shadow pairing, figures, gate and report on known scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlp_orchestration.rollout.metrics import score_distribution_psi
from mlp_orchestration.rollout.shadow import (
    OUTSIDE_EDGES,
    evaluate_shadow,
    pair_scores,
    shadow_gate,
)
from mlp_orchestration.rollout.shadow_report import render_shadow_report

START = datetime(2013, 9, 2, 3, 0, tzinfo=UTC)


def log_row(
    request_id: str,
    arm: str,
    version: str,
    score: float | None,
    *,
    amount: float = 5.0,
    status: int = 200,
    minutes: int = 0,
    label: float | None = None,
    latency: float = 0.2,
) -> dict:
    return {
        "request_id": request_id,
        "entity_id": request_id.removeprefix("r"),
        "event_time": START + timedelta(minutes=minutes),
        "features": {"Amount": amount},
        "arm": arm,
        "model_version": version,
        "score": score,
        "latency_ms": latency,
        "status": status,
        "label": label,
    }


def test_pairing_joins_champion_and_challenger_by_request_id():
    rows = pd.DataFrame(
        [
            log_row("r1", "champion", "1", 0.10, minutes=1),
            log_row("r1", "shadow", "2", 0.20, minutes=1, latency=0.5),
            log_row("r2", "champion", "1", 0.30, minutes=0),
            log_row("r2", "shadow", "2", 0.40, minutes=0),
            log_row("r2", "shadow", "3", 0.99, minutes=0),  # another shadow version
            log_row("r3", "champion", "1", 0.50),  # challenger never scored it
            log_row("r4", "champion", "1", 0.60),
            log_row("r4", "shadow", "2", None, status=422),  # challenger failed
            log_row("r5", "shadow", "2", 0.70),  # champion row missing
        ]
    )
    pairs = pair_scores(rows, challenger_version="2")
    assert pairs["request_id"].tolist() == ["r2", "r1"]  # ordered by event time
    assert pairs["champion_score"].tolist() == [0.30, 0.10]
    assert pairs["challenger_score"].tolist() == [0.40, 0.20]
    assert pairs["challenger_latency_ms"].tolist() == [0.2, 0.5]
    assert pairs["champion_version"].tolist() == ["1", "1"]


def known_pairs() -> pd.DataFrame:
    """Ten requests: the challenger flips r3 (newly flagged) and r9 (no longer flagged)."""
    champion = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.9, 0.95]
    challenger = [0.01, 0.02, 0.60, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.97]
    amounts = [5, 5, 5, 50, 50, 50, 500, 500, 500, 500]
    labels = [0, 0, 1, 0, 0, 0, 0, 0, 1, 1]
    rows = []
    for i, (c, s, a, y) in enumerate(zip(champion, challenger, amounts, labels, strict=True)):
        rows.append(log_row(f"r{i}", "champion", "1", c, amount=a, minutes=i, label=y))
        rows.append(log_row(f"r{i}", "shadow", "2", s, amount=a, minutes=i, label=y, latency=0.4))
    return pair_scores(pd.DataFrame(rows), challenger_version="2")


def summary_of(spec, pairs):
    return evaluate_shadow(
        pairs,
        spec=spec,
        champion_version="1",
        challenger_version="2",
        champion_threshold=0.5,
        challenger_threshold=0.5,
    )


def test_shadow_figures_on_known_scores(fraud_spec):
    summary = summary_of(fraud_spec, known_pairs())
    assert summary.requests == 10
    assert summary.agreement == pytest.approx(0.8)
    assert summary.flipped == {
        "total": 2,
        "newly_flagged": 1,
        "no_longer_flagged": 1,
        "rate": pytest.approx(0.2),
    }
    assert summary.alert_rates == {"champion": 0.2, "challenger": 0.2}
    assert summary.latency["challenger"]["p99_ms"] == pytest.approx(0.4)
    assert summary.labels["labelled"] == 10
    assert summary.labels["positives"] == 3
    # Champion ranks r8 and r9 top: both positives, r2 last among the three.
    assert summary.labels["champion"]["recall_at_threshold"] == pytest.approx(2 / 3)
    assert summary.labels["challenger"]["recall_at_threshold"] == pytest.approx(2 / 3)
    assert summary.correlation["spearman"] is not None


def test_shadow_flips_per_segment(fraud_spec):
    summary = summary_of(fraud_spec, known_pairs())
    amount = {row["group"]: row for row in summary.segments["amount_band"]}
    assert amount["under_10"]["requests"] == 3
    assert amount["under_10"]["newly_flagged"] == 1
    assert amount["10_to_100"]["total"] == 0
    assert amount["over_100"]["no_longer_flagged"] == 1
    hours = {row["group"]: row for row in summary.segments["time_of_day"]}
    assert hours["night"]["requests"] == 10  # 03:00 to 03:09
    assert OUTSIDE_EDGES not in amount


def test_shadow_gate_fails_on_flips(fraud_spec):
    limits = fraud_spec.shadow.model_copy(update={"min_requests": 10, "min_segment_requests": 3})
    gate = shadow_gate(summary_of(fraud_spec, known_pairs()), limits)
    assert gate.verdict == "failed"
    failed = {check.check for check in gate.failures}
    assert "agreement" in failed
    assert "flip_rate" in failed
    assert "flip_rate[amount_band=under_10]" in failed
    assert "flip_rate[amount_band=10_to_100]" not in failed


def test_shadow_gate_insufficient_below_min_requests(fraud_spec):
    gate = shadow_gate(summary_of(fraud_spec, known_pairs()), fraud_spec.shadow)
    assert gate.verdict == "insufficient"
    assert gate.checks[0].message.startswith("min_requests FAILED: paired requests is 10")


def test_shadow_gate_passes_close_challenger(fraud_spec):
    rng = np.random.default_rng(7)
    n = 3000
    champion = rng.beta(0.5, 30, n)
    challenger = np.clip(champion * np.exp(rng.normal(0, 0.05, n)), 0, 1)
    rows = []
    for i in range(n):
        rows.append(log_row(f"r{i}", "champion", "1", float(champion[i]), amount=float(i % 300)))
        rows.append(log_row(f"r{i}", "shadow", "2", float(challenger[i]), amount=float(i % 300)))
    pairs = pair_scores(pd.DataFrame(rows), challenger_version="2")
    threshold = float(np.quantile(champion, 0.995))
    summary = evaluate_shadow(
        pairs,
        spec=fraud_spec,
        champion_version="1",
        challenger_version="2",
        champion_threshold=threshold,
        challenger_threshold=threshold,
    )
    gate = shadow_gate(summary, fraud_spec.shadow)
    assert gate.verdict == "passed", [c.message for c in gate.failures]
    assert summary.correlation["pearson_log_odds"] > 0.99
    assert summary.score_psi < 0.05


def test_score_psi_identical_and_shifted():
    rng = np.random.default_rng(3)
    reference = rng.beta(0.5, 30, 5000)
    assert score_distribution_psi(reference, reference) == pytest.approx(0.0)
    assert score_distribution_psi(reference, np.clip(reference * 10, 0, 1)) > 0.5


def test_report_is_self_contained_html(fraud_spec):
    pairs = known_pairs()
    summary = summary_of(fraud_spec, pairs)
    gate = shadow_gate(summary, fraud_spec.shadow)
    page = render_shadow_report(
        summary,
        gate,
        champion_scores=pairs["champion_score"].to_numpy(),
        challenger_scores=pairs["challenger_score"].to_numpy(),
        generated_at=START,
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert page.count("<polyline") == 2
    assert "insufficient" in page
    assert "amount_band" in page
    assert "src=" not in page
    assert "href=" not in page


def test_score_psi_ignores_floor_shift():
    rng = np.random.default_rng(4)
    champion = np.where(rng.random(5000) < 0.99, 7e-5, rng.uniform(0.01, 1.0, 5000))
    floor_moved = np.where(champion == 7e-5, 2.5e-5, champion)
    assert score_distribution_psi(champion, floor_moved) == pytest.approx(0.0)
    assert score_distribution_psi(champion, np.full(5000, 0.5)) > 5
