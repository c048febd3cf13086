"""Guard metrics of a canary stage: one function per metric, registered by name.

Each guard compares the canary arm with the champion arm of the same window and returns a
``GuardResult``. A guard that lacks the data to judge (no labels yet, an empty arm) returns
``judged=False`` and never breaches. A breach names the metric, its value and its limit.
Add a guard by decorating a function with ``@guard("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binomtest

from mlp_orchestration.rollout.metrics import (
    finite_or_none,
    percentile,
    precision_recall_at_threshold,
    score_distribution_psi,
)
from mlp_orchestration.rollout.windows import ArmWindow
from mlp_orchestration.spec import GuardSpec


@dataclass(frozen=True)
class GuardResult:
    """One guard metric of one stage: the measured value against its limit."""

    name: str
    value: float | None
    limit: float
    comparison: str
    breached: bool
    judged: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["value"] = finite_or_none(self.value)
        return result


GuardFunction = Callable[[ArmWindow, ArmWindow, GuardSpec], GuardResult]

# Below 100 samples the 99th percentile is the maximum, which one scheduling pause decides.
MIN_LATENCY_SAMPLES = 100
# PSI of two samples of one distribution is about (bins - 1) x (1/n1 + 1/n2) from sampling
# alone: 0.14 at 100 rows per arm on the 8 score bins, 0.23 at 60.
MIN_PSI_SAMPLES = 100

GUARDS: dict[str, GuardFunction] = {}


def guard(name: str) -> Callable[[GuardFunction], GuardFunction]:
    """Register a guard function under ``name``."""

    def register(function: GuardFunction) -> GuardFunction:
        if name in GUARDS:
            raise ValueError(f"guard {name!r} is already registered")
        GUARDS[name] = function
        return function

    return register


def evaluate_guards(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> list[GuardResult]:
    """Run every registered guard, in registration order."""
    return [function(canary, champion, limits) for function in GUARDS.values()]


def _not_judged(name: str, limit: float, comparison: str, why: str) -> GuardResult:
    return GuardResult(name, None, limit, comparison, False, False, f"{name} not judged: {why}")


def _verdict(
    name: str,
    value: float,
    limit: float,
    comparison: str,
    breached: bool,
    what: str,
    details: dict[str, Any],
) -> GuardResult:
    state = "BREACHED" if breached else "healthy"
    message = f"{name} {state}: {what} is {value:.4g}, limit {comparison} {limit:.4g}"
    return GuardResult(name, value, limit, comparison, breached, True, message, details)


@guard("error_rate")
def error_rate(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """Canary error rate minus champion error rate; breaches above the allowed increase."""
    limit = limits.max_error_rate_increase
    if canary.error_rate is None or champion.error_rate is None:
        return _not_judged("error_rate", limit, "<=", "an arm has no requests")
    increase = canary.error_rate - champion.error_rate
    details = {
        "canary": canary.error_rate,
        "champion": champion.error_rate,
        "canary_errors": canary.errors,
        "champion_errors": champion.errors,
    }
    return _verdict(
        "error_rate",
        increase,
        limit,
        "<=",
        increase > limit,
        "error rate increase over the champion",
        details,
    )


def _finite_count(values: np.ndarray) -> int:
    return int(np.isfinite(values).sum())


@guard("p99_latency")
def p99_latency(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """Canary p99 latency over champion p99; a canary p99 under the floor never breaches."""
    limit = limits.max_p99_latency_ratio
    samples = min(_finite_count(canary.latencies_ms), _finite_count(champion.latencies_ms))
    if samples < MIN_LATENCY_SAMPLES:
        return _not_judged(
            "p99_latency",
            limit,
            "<=",
            f"{samples} latency figures in the smaller arm, need {MIN_LATENCY_SAMPLES}",
        )
    canary_p99 = percentile(canary.latencies_ms, 99)
    champion_p99 = percentile(champion.latencies_ms, 99)
    if canary_p99 is None or champion_p99 is None or champion_p99 <= 0:
        return _not_judged("p99_latency", limit, "<=", "an arm has no latency figures")
    ratio = canary_p99 / champion_p99
    breached = ratio > limit and canary_p99 > limits.min_p99_latency_ms
    details = {
        "canary_p99_ms": canary_p99,
        "champion_p99_ms": champion_p99,
        "floor_ms": limits.min_p99_latency_ms,
    }
    return _verdict(
        "p99_latency",
        ratio,
        limit,
        "<=",
        breached,
        "canary p99 latency / champion p99 latency",
        details,
    )


@guard("alert_rate")
def alert_rate(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """Canary alert rate over champion alert rate, each at its own decision threshold.

    Alerts are rare (the spec's alert rate), so a few hundred requests give noisy rates. The
    guard breaches only when the ratio exceeds the limit and a one-sided binomial test finds
    the canary's alert count above ``limit x champion rate`` beyond chance.
    """
    limit = limits.max_alert_rate_ratio
    canary_scored, champion_scored = canary.scored.size, champion.scored.size
    if canary_scored == 0 or champion_scored == 0:
        return _not_judged("alert_rate", limit, "<=", "an arm has no scored requests")
    canary_rate = canary.alerts / canary_scored
    # Laplace smoothing keeps the reference above zero when the champion raised no alert.
    reference = (champion.alerts + 1) / (champion_scored + 2)
    ratio = canary_rate / reference
    p_value = binomtest(
        canary.alerts, canary_scored, min(1.0, limit * reference), alternative="greater"
    ).pvalue
    breached = ratio > limit and p_value < limits.alert_rate_significance
    details = {
        "canary": canary_rate,
        "champion": champion.alerts / champion_scored,
        "canary_alerts": canary.alerts,
        "champion_alerts": champion.alerts,
        "p_value": float(p_value),
    }
    return _verdict(
        "alert_rate",
        ratio,
        limit,
        "<=",
        breached,
        "canary alert rate / champion alert rate",
        details,
    )


@guard("score_psi")
def score_psi(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """PSI of the canary's score distribution against the champion's."""
    limit = limits.max_score_psi
    samples = min(canary.scored.size, champion.scored.size)
    if samples < MIN_PSI_SAMPLES:
        return _not_judged(
            "score_psi",
            limit,
            "<=",
            f"{samples} scored requests in the smaller arm, need {MIN_PSI_SAMPLES}",
        )
    value = score_distribution_psi(champion.scored, canary.scored)
    if value is None:
        return _not_judged("score_psi", limit, "<=", "an arm has no scored requests")
    details = {
        "canary_scored": int(canary.scored.size),
        "champion_scored": int(champion.scored.size),
    }
    return _verdict(
        "score_psi", value, limit, "<=", value > limit, "score PSI against the champion", details
    )


def _labelled_ratio(
    name: str, canary: ArmWindow, champion: ArmWindow, limits: GuardSpec, limit: float, pick: int
) -> GuardResult:
    need = limits.min_labelled_positives
    positives = {"canary": canary.labelled_positives, "champion": champion.labelled_positives}
    if min(positives.values()) < need:
        return _not_judged(
            name, limit, ">=", f"labelled positives {positives}, need {need} per arm"
        )
    canary_value = precision_recall_at_threshold(*canary.labelled(), canary.decision_threshold)[
        pick
    ]
    champion_value = precision_recall_at_threshold(
        *champion.labelled(), champion.decision_threshold
    )[pick]
    details = {"canary": canary_value, "champion": champion_value, "labelled_positives": positives}
    if champion_value is None or champion_value == 0:
        return _not_judged(name, limit, ">=", f"the champion's {name} is {champion_value}")
    ratio = (canary_value or 0.0) / champion_value
    return _verdict(
        name, ratio, limit, ">=", ratio < limit, f"canary {name} / champion {name}", details
    )


@guard("precision")
def precision(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """Canary precision over champion precision at their decision thresholds, once labelled."""
    return _labelled_ratio("precision", canary, champion, limits, limits.min_precision_ratio, 0)


@guard("recall")
def recall(canary: ArmWindow, champion: ArmWindow, limits: GuardSpec) -> GuardResult:
    """Canary recall over champion recall at their decision thresholds, once labelled."""
    return _labelled_ratio("recall", canary, champion, limits, limits.min_recall_ratio, 1)
