"""Shadow evaluation: the champion serves, the challenger scores the same requests.

``pair_scores`` joins the champion arm and the challenger's shadow rows of the prediction log on
``request_id``. ``evaluate_shadow`` compares the two scores of every pair: decision agreement at
each version's decision threshold, flipped decisions overall and per segment, score correlation,
score PSI, latency and, once labels have arrived, PR-AUC and recall at the spec's alert rate.
``shadow_gate`` decides from the spec's shadow thresholds whether the canary may start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.rollout.events import json_safe
from mlp_orchestration.rollout.metrics import (
    latency_summary,
    logit,
    pearson,
    pr_auc,
    precision_recall_at_threshold,
    score_distribution_psi,
    spearman,
    threshold_at_rate,
)
from mlp_orchestration.spec import ModelSpec, SegmentSpec, ShadowSpec
from mlp_orchestration.warehouse import label_feedback, prediction_log

OUTSIDE_EDGES = "outside_edges"

PAIR_COLUMNS = [
    "request_id",
    "entity_id",
    "event_time",
    "features",
    "champion_version",
    "champion_score",
    "challenger_score",
    "champion_latency_ms",
    "challenger_latency_ms",
    "label",
]


def pair_scores(rows: pd.DataFrame, *, challenger_version: str) -> pd.DataFrame:
    """Pair each champion-arm row with the challenger's shadow row of the same request.

    Args:
        rows: prediction log rows with columns request_id, entity_id, event_time, features,
            arm, model_version, score, latency_ms, status and, optionally, label.
        challenger_version: the shadow version to pair with the champion.

    Returns:
        One row per request both arms scored successfully, with the columns of PAIR_COLUMNS.
    """
    ok = rows["status"].eq(200) & rows["score"].notna()
    champion = rows[ok & rows["arm"].eq("champion")]
    shadow = rows[
        ok & rows["arm"].eq("shadow") & rows["model_version"].astype(str).eq(challenger_version)
    ]
    # A request id appears once per arm; keep the first should a log writer retry a batch.
    champion = champion.drop_duplicates("request_id")
    shadow = shadow.drop_duplicates("request_id")
    pairs = champion.merge(
        shadow[["request_id", "score", "latency_ms"]],
        on="request_id",
        suffixes=("_champion", "_challenger"),
        validate="one_to_one",
    )
    label = pairs["label"] if "label" in pairs else pd.Series(np.nan, index=pairs.index)
    result = pd.DataFrame(
        {
            "request_id": pairs["request_id"],
            "entity_id": pairs["entity_id"],
            "event_time": pairs["event_time"],
            "features": pairs["features"],
            "champion_version": pairs["model_version"].astype(str),
            "champion_score": pairs["score_champion"].astype(float),
            "challenger_score": pairs["score_challenger"].astype(float),
            "champion_latency_ms": pairs["latency_ms_champion"].astype(float),
            "challenger_latency_ms": pairs["latency_ms_challenger"].astype(float),
            "label": pd.to_numeric(label, errors="coerce").astype(float),
        }
    )
    return result.sort_values("event_time", kind="stable").reset_index(drop=True)


def read_shadow_rows(
    engine: Engine,
    model: str,
    *,
    challenger_version: str,
    champion_version: str | None = None,
    routing_versions: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Read the champion and challenger-shadow rows of the prediction log, with labels."""
    joined = prediction_log.outerjoin(
        label_feedback,
        sa.and_(
            label_feedback.c.model == prediction_log.c.model,
            label_feedback.c.entity_id == prediction_log.c.entity_id,
        ),
    )
    champion_rows = prediction_log.c.arm == "champion"
    if champion_version is not None:
        champion_rows = sa.and_(champion_rows, prediction_log.c.model_version == champion_version)
    shadow_rows = sa.and_(
        prediction_log.c.arm == "shadow", prediction_log.c.model_version == challenger_version
    )
    query = (
        sa.select(
            prediction_log.c.request_id,
            prediction_log.c.entity_id,
            prediction_log.c.event_time,
            prediction_log.c.features,
            prediction_log.c.arm,
            prediction_log.c.model_version,
            prediction_log.c.score,
            prediction_log.c.latency_ms,
            prediction_log.c.status,
            label_feedback.c.label,
        )
        .select_from(joined)
        .where(prediction_log.c.model == model, sa.or_(champion_rows, shadow_rows))
    )
    if routing_versions is not None:
        query = query.where(prediction_log.c.routing_version.in_(list(routing_versions)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    columns = [
        "request_id",
        "entity_id",
        "event_time",
        "features",
        "arm",
        "model_version",
        "score",
        "latency_ms",
        "status",
        "label",
    ]
    return pd.DataFrame(rows, columns=columns)


def count_shadow_errors(rows: pd.DataFrame, *, challenger_version: str) -> int:
    """Count the challenger's shadow rows that failed to score."""
    shadow = rows[
        rows["arm"].eq("shadow") & rows["model_version"].astype(str).eq(challenger_version)
    ]
    return int((shadow["status"] != 200).sum())


def segment_groups(pairs: pd.DataFrame, segment: SegmentSpec) -> pd.Series:
    """Group label of each pair for one segment; values outside the edges get OUTSIDE_EDGES."""
    if segment.column == "hour_of_day":
        source = pd.to_datetime(pairs["event_time"], utc=True).dt.hour.astype(float)
    else:
        source = (
            pairs["features"]
            .map(lambda features: (features or {}).get(segment.column))
            .astype(float)
        )
    groups = pd.cut(source, bins=segment.edges, labels=segment.labels, right=False)
    return groups.astype(object).where(groups.notna(), OUTSIDE_EDGES)


@dataclass(frozen=True)
class ShadowSummary:
    """Figures comparing the challenger with the champion on the same requests."""

    model: str
    champion_version: str
    challenger_version: str
    champion_threshold: float
    challenger_threshold: float
    requests: int
    shadow_errors: int
    agreement: float | None
    flipped: dict[str, Any]
    segments: dict[str, list[dict[str, Any]]]
    correlation: dict[str, float | None]
    score_psi: float | None
    alert_rates: dict[str, float | None]
    latency: dict[str, dict[str, float | None]]
    labels: dict[str, Any]
    routing_versions: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return json_safe(self.__dict__)


def _flip_counts(champion_flag: np.ndarray, challenger_flag: np.ndarray) -> dict[str, Any]:
    newly = int(np.sum(challenger_flag & ~champion_flag))
    cleared = int(np.sum(champion_flag & ~challenger_flag))
    total = newly + cleared
    return {
        "total": total,
        "newly_flagged": newly,
        "no_longer_flagged": cleared,
        "rate": total / champion_flag.size if champion_flag.size else None,
    }


def _segment_flips(
    pairs: pd.DataFrame, spec: ModelSpec, champion_flag: np.ndarray, challenger_flag: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for segment in spec.segments:
        groups = segment_groups(pairs, segment).to_numpy()
        rows = []
        for label in [*segment.labels, OUTSIDE_EDGES]:
            mask = groups == label
            if label == OUTSIDE_EDGES and not mask.any():
                continue
            flips = _flip_counts(champion_flag[mask], challenger_flag[mask])
            rows.append({"group": label, "requests": int(mask.sum()), **flips})
        result[segment.name] = rows
    return result


def _label_metrics(
    pairs: pd.DataFrame, alert_rate: float, thresholds: dict[str, float]
) -> dict[str, Any]:
    labelled = pairs[pairs["label"].notna()]
    labels = labelled["label"].to_numpy().astype(np.int64)
    summary: dict[str, Any] = {"labelled": int(labels.size), "positives": int(labels.sum())}
    for role in ("champion", "challenger"):
        scores = labelled[f"{role}_score"].to_numpy()
        cut = threshold_at_rate(scores, alert_rate)
        at_rate = (
            (None, None) if cut is None else precision_recall_at_threshold(labels, scores, cut)
        )
        at_threshold = precision_recall_at_threshold(labels, scores, thresholds[role])
        summary[role] = {
            "pr_auc": pr_auc(labels, scores),
            "precision_at_alert_rate": at_rate[0],
            "recall_at_alert_rate": at_rate[1],
            "precision_at_threshold": at_threshold[0],
            "recall_at_threshold": at_threshold[1],
        }
    return summary


def evaluate_shadow(
    pairs: pd.DataFrame,
    *,
    spec: ModelSpec,
    champion_version: str,
    challenger_version: str,
    champion_threshold: float,
    challenger_threshold: float,
    shadow_errors: int = 0,
    routing_versions: Sequence[int] = (),
) -> ShadowSummary:
    """Compare the two scores of every pair (see the module docstring for the figures)."""
    champion = pairs["champion_score"].to_numpy(dtype=np.float64)
    challenger = pairs["challenger_score"].to_numpy(dtype=np.float64)
    champion_flag = champion >= champion_threshold
    challenger_flag = challenger >= challenger_threshold
    requests = int(champion.size)
    thresholds = {"champion": champion_threshold, "challenger": challenger_threshold}
    return ShadowSummary(
        model=spec.name,
        champion_version=champion_version,
        challenger_version=challenger_version,
        champion_threshold=champion_threshold,
        challenger_threshold=challenger_threshold,
        requests=requests,
        shadow_errors=shadow_errors,
        agreement=float(np.mean(champion_flag == challenger_flag)) if requests else None,
        flipped=_flip_counts(champion_flag, challenger_flag),
        segments=_segment_flips(pairs, spec, champion_flag, challenger_flag),
        correlation={
            "pearson_log_odds": pearson(logit(champion), logit(challenger)),
            "pearson": pearson(champion, challenger),
            "spearman": spearman(champion, challenger),
        },
        score_psi=score_distribution_psi(champion, challenger),
        alert_rates={
            "champion": float(champion_flag.mean()) if requests else None,
            "challenger": float(challenger_flag.mean()) if requests else None,
        },
        latency={
            "champion": latency_summary(pairs["champion_latency_ms"].to_numpy()),
            "challenger": latency_summary(pairs["challenger_latency_ms"].to_numpy()),
        },
        labels=_label_metrics(pairs, spec.alert_rate, thresholds),
        routing_versions=[int(v) for v in routing_versions],
    )


Verdict = Literal["passed", "failed", "insufficient"]


@dataclass(frozen=True)
class ShadowCheck:
    check: str
    value: float | None
    limit: float
    comparison: str
    passed: bool
    message: str


@dataclass(frozen=True)
class ShadowGate:
    """The shadow gate's verdict: passed, failed, or insufficient (too few requests yet)."""

    verdict: Verdict
    checks: list[ShadowCheck]

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def failures(self) -> list[ShadowCheck]:
        return [check for check in self.checks if not check.passed]

    def as_dict(self) -> dict[str, Any]:
        return json_safe({"verdict": self.verdict, "checks": [c.__dict__ for c in self.checks]})


def _check(
    check: str, value: float | None, limit: float, comparison: str, what: str
) -> ShadowCheck:
    if value is None:
        return ShadowCheck(
            check, None, limit, comparison, False, f"{check} FAILED: {what} could not be measured"
        )
    passed = value >= limit if comparison == ">=" else value <= limit
    state = "passed" if passed else "FAILED"
    return ShadowCheck(
        check,
        float(value),
        float(limit),
        comparison,
        passed,
        f"{check} {state}: {what} is {value:.4g}, limit {comparison} {limit:.4g}",
    )


def shadow_gate(summary: ShadowSummary, limits: ShadowSpec) -> ShadowGate:
    """Decide from the shadow thresholds whether the challenger may start its canary."""
    volume = _check("min_requests", summary.requests, limits.min_requests, ">=", "paired requests")
    if not volume.passed:
        return ShadowGate("insufficient", [volume])
    checks = [
        volume,
        _check(
            "agreement",
            summary.agreement,
            limits.min_agreement,
            ">=",
            "decision agreement at the thresholds",
        ),
        _check(
            "flip_rate",
            summary.flipped["rate"],
            limits.max_flip_rate,
            "<=",
            "share of flipped decisions",
        ),
    ]
    for name, groups in summary.segments.items():
        for group in groups:
            if group["requests"] >= limits.min_segment_requests:
                checks.append(
                    _check(
                        f"flip_rate[{name}={group['group']}]",
                        group["rate"],
                        limits.max_flip_rate,
                        "<=",
                        f"flipped share in {name}={group['group']}",
                    )
                )
    checks.append(
        _check(
            "score_correlation",
            summary.correlation["pearson_log_odds"],
            limits.min_score_correlation,
            ">=",
            "Pearson correlation of the log-odds scores",
        )
    )
    checks.append(
        _check(
            "score_psi",
            summary.score_psi,
            limits.max_score_psi,
            "<=",
            "challenger score PSI against the champion",
        )
    )
    labels = summary.labels
    if labels["positives"] >= limits.min_labelled_positives:
        champion_auc = labels["champion"]["pr_auc"]
        challenger_auc = labels["challenger"]["pr_auc"]
        drop = (
            None
            if champion_auc is None or challenger_auc is None
            else champion_auc - challenger_auc
        )
        checks.append(
            _check(
                "pr_auc_drop",
                drop,
                limits.max_pr_auc_drop,
                "<=",
                "PR-AUC drop against the champion on labelled pairs",
            )
        )
    verdict: Verdict = "passed" if all(check.passed for check in checks) else "failed"
    return ShadowGate(verdict, checks)
