"""Prediction log rows with known scores, labels, latencies and statuses for rollout tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.warehouse import label_feedback, prediction_log, utcnow

_entities = itertools.count(1_000_000)


@dataclass(frozen=True)
class ArmPlan:
    """How one arm's rows look: counts of positives, flagged positives and flagged negatives."""

    requests: int
    positives: int = 0
    flagged_positives: int = 0
    flagged_negatives: int = 0
    errors: int = 0
    slow: int = 0
    slow_ms: float = 40.0
    latency_ms: float = 0.3
    low_score_scale: float = 1.0


def plan_scores(
    plan: ArmPlan, threshold: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, labels): flagged rows score above ``threshold``, the rest below it."""
    labels = np.zeros(plan.requests, dtype=np.int64)
    labels[: plan.positives] = 1
    scores = rng.uniform(0.02, 0.9, plan.requests) * threshold * plan.low_score_scale
    high = min(1.0, threshold * 1.5) if threshold < 0.66 else (1.0 + threshold) / 2
    scores[: plan.flagged_positives] = high
    negatives = np.arange(plan.positives, plan.requests)
    scores[negatives[: plan.flagged_negatives]] = high
    order = rng.permutation(plan.requests)
    return scores[order], labels[order]


def insert_arm(
    engine: Engine,
    model: str,
    *,
    arm: str,
    routing_version: int,
    model_version: str,
    plan: ArmPlan,
    threshold: float,
    seed: int = 0,
    with_labels: bool = True,
) -> list[str]:
    """Insert one arm's rows (and their labels) and return the entity ids."""
    rng = np.random.default_rng(seed)
    scores, labels = plan_scores(plan, threshold, rng)
    now = utcnow()
    latencies = np.full(plan.requests, plan.latency_ms)
    latencies[: plan.slow] = plan.slow_ms
    latencies = latencies[rng.permutation(plan.requests)]
    statuses = np.full(plan.requests, 200)
    statuses[rng.choice(plan.requests, plan.errors, replace=False)] = 500
    rows, feedback, entities = [], [], []
    for i in range(plan.requests):
        entity = str(next(_entities))
        entities.append(entity)
        failed = statuses[i] != 200
        rows.append(
            {
                "request_id": uuid.uuid4().hex,
                "logged_at": now,
                "event_time": now,
                "model": model,
                "entity_id": entity,
                "features": {"Amount": 12.0},
                "score": None if failed else float(scores[i]),
                "model_version": model_version,
                "arm": arm,
                "routing_version": routing_version,
                "latency_ms": float(latencies[i]),
                "status": int(statuses[i]),
                "error": "scoring failed" if failed else None,
            }
        )
        feedback.append(
            {
                "model": model,
                "entity_id": entity,
                "label": int(labels[i]),
                "event_time": now - timedelta(minutes=5),
                "arrived_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(prediction_log.insert(), rows)
        if with_labels:
            conn.execute(label_feedback.insert(), feedback)
    return entities


def count_rows(engine: Engine, table: sa.Table, **where: object) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


# The champion arm of every case: alert rate 1.8%, precision 0.44, recall 0.8.
CHAMPION_PLAN = ArmPlan(requests=3000, positives=30, flagged_positives=24, flagged_negatives=30)
HEALTHY_CANARY = ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=4)


@dataclass(frozen=True)
class BreachCase:
    """Canary rows that breach one guard, whether their labels have arrived, limit overrides."""

    canary: ArmPlan
    with_labels: bool = True
    guard_overrides: dict[str, float] | None = None


BREACH_CASES = {
    "error_rate": BreachCase(
        ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=4, errors=45)
    ),
    "p99_latency": BreachCase(
        ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=4, slow=10)
    ),
    # Extra alerts on traffic whose labels have not arrived yet, so precision is not judged.
    "alert_rate": BreachCase(
        ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=40),
        with_labels=False,
    ),
    "score_psi": BreachCase(
        ArmPlan(
            requests=450,
            positives=10,
            flagged_positives=8,
            flagged_negatives=4,
            low_score_scale=0.01,
        )
    ),
    # Precision cannot fall at equal recall without more alerts, so the alert-rate limit is
    # relaxed here to see the precision guard alone.
    "precision": BreachCase(
        ArmPlan(requests=450, positives=10, flagged_positives=8, flagged_negatives=30),
        guard_overrides={"max_alert_rate_ratio": 10.0},
    ),
    "recall": BreachCase(
        ArmPlan(requests=450, positives=10, flagged_positives=3, flagged_negatives=3)
    ),
}


def insert_shadow_pairs(
    engine: Engine,
    model: str,
    *,
    routing_version: int,
    champion_version: str,
    challenger_version: str,
    champion_scores: np.ndarray,
    challenger_scores: np.ndarray,
) -> None:
    """Insert champion rows and the challenger's shadow rows of the same requests."""
    now = utcnow()
    rows = []
    for champion, challenger in zip(champion_scores, challenger_scores, strict=True):
        request_id, entity = uuid.uuid4().hex, str(next(_entities))
        for arm, version, score in (
            ("champion", champion_version, champion),
            ("shadow", challenger_version, challenger),
        ):
            rows.append(
                {
                    "request_id": request_id,
                    "logged_at": now,
                    "event_time": now,
                    "model": model,
                    "entity_id": entity,
                    "features": {"Amount": 20.0},
                    "score": float(score),
                    "model_version": version,
                    "arm": arm,
                    "routing_version": routing_version,
                    "latency_ms": 0.3,
                    "status": 200,
                    "error": None,
                }
            )
    with engine.begin() as conn:
        conn.execute(prediction_log.insert(), rows)


def close_scores(n: int, *, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Champion scores shaped like fraud scores and a challenger that mostly agrees."""
    rng = np.random.default_rng(seed)
    champion = rng.beta(0.5, 30, n)
    challenger = np.clip(champion * np.exp(rng.normal(0, noise, n)), 0, 1)
    return champion, challenger
