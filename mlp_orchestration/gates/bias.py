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
        positive_rates = [r for r in alert_rates.values() if r > 0]
        if len(positive_rates) >= 2:
            ratio = max(positive_rates) / min(positive_rates)
            checks.append(
                GateCheck.compare(
                    f"alert_rate_ratio[{attribute}]",
                    ratio,
                    limits.max_alert_rate_ratio,
                    "<=",
                    f"highest to lowest alert rate across {attribute}",
                )
            )
    return GateResult("bias", all(c.passed for c in checks), checks, notes)
