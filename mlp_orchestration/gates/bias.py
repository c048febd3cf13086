"""Bias gate: across the groups of each protected attribute, the gap in true-positive rate and
the ratio of alert rates at the decision threshold stay within the spec's limits."""

from __future__ import annotations

import numpy as np

from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult
from mlp_orchestration.gates.segments import group_rates


def bias_gate(context: GateContext) -> GateResult:
    spec = context.spec
    limits = spec.gates.bias
    if limits is None or not spec.protected_attributes:
        return GateResult("bias", True, [], ["no protected attributes in the spec"])
    labels = context.labels
    flagged = context.candidate_scores >= context.candidate.decision_threshold
    checks: list[GateCheck] = []
    notes: list[str] = []
    for attribute in spec.protected_attributes:
        values = context.holdout[attribute].to_numpy()
        tprs, alert_rates = {}, {}
        for group in np.unique(values):
            mask = values == group
            if mask.sum() < limits.min_group_size:
                notes.append(
                    f"{attribute}={group}: {int(mask.sum())} rows, below "
                    f"{limits.min_group_size}; not compared"
                )
                continue
            tpr, alert_rate = group_rates(mask, labels, flagged)
            if np.isfinite(tpr):
                tprs[group] = tpr
            alert_rates[group] = alert_rate
        if len(tprs) >= 2:
            gap = max(tprs.values()) - min(tprs.values())
            checks.append(
                GateCheck.compare(
                    f"tpr_gap[{attribute}]",
                    gap,
                    limits.max_tpr_gap,
                    "<=",
                    f"largest true-positive-rate gap across {attribute}",
                )
            )
        if len(alert_rates) >= 2:
            checks.append(_alert_rate_ratio(attribute, alert_rates, limits.max_alert_rate_ratio))
    return GateResult("bias", all(c.passed for c in checks), checks, notes)


def _alert_rate_ratio(attribute: str, rates: dict, limit: float) -> GateCheck:
    """Highest to lowest alert rate; a group never flagged while another is fails outright."""
    check = f"alert_rate_ratio[{attribute}]"
    highest, lowest = max(rates.values()), min(rates.values())
    if highest == 0:
        return GateCheck(
            check,
            1.0,
            limit,
            "<=",
            True,
            f"{check} passed: no group of {attribute} is flagged at all",
        )
    if lowest == 0:
        never = [str(group) for group, rate in rates.items() if rate == 0]
        return GateCheck(
            check,
            None,
            limit,
            "<=",
            False,
            f"{check} FAILED: groups {never} of {attribute} are never flagged while another "
            f"is flagged at {highest:.2%}, an unbounded ratio (threshold <= {limit:g})",
        )
    return GateCheck.compare(
        check, highest / lowest, limit, "<=", f"highest to lowest alert rate across {attribute}"
    )
