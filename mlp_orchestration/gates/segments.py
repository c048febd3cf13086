"""Segment gate: PR-AUC of every segment group with enough positives above the spec's floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult
from mlp_orchestration.spec import ModelSpec, SegmentSpec


def segment_values(frame: pd.DataFrame, spec: ModelSpec, segment: SegmentSpec) -> pd.Series:
    """Group label of each row for one segment; rows outside the edges get NaN."""
    if segment.column == "hour_of_day":
        source = frame[spec.event_time].dt.hour.astype(float)
    else:
        source = frame[segment.column].astype(float)
    return pd.cut(source, bins=segment.edges, labels=segment.labels, right=False)


def segments_gate(context: GateContext) -> GateResult:
    spec = context.spec
    settings = spec.gates.segments
    checks: list[GateCheck] = []
    notes: list[str] = []
    if settings is None or not spec.segments:
        return GateResult("segments", True, [], ["no segments configured"])
    labels = context.labels
    for segment in spec.segments:
        groups = segment_values(context.holdout, spec, segment)
        for group in segment.labels:
            mask = (groups == group).to_numpy()
            positives = int(labels[mask].sum())
            name = f"{segment.name}={group}"
            if positives < settings.min_positives or positives == int(mask.sum()):
                notes.append(
                    f"{name}: {int(mask.sum())} rows with {positives} positives, fewer than "
                    f"{settings.min_positives}; reported, not gated"
                )
                continue
            value = float(average_precision_score(labels[mask], context.candidate_scores[mask]))
            checks.append(
                GateCheck.compare(
                    f"segment_pr_auc[{name}]", value, settings.min_pr_auc, ">=", f"PR-AUC of {name}"
                )
            )
    passed = all(c.passed for c in checks)
    return GateResult("segments", passed, checks, notes)


def group_rates(mask: np.ndarray, labels: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    """True-positive rate and alert rate of one group."""
    positives = labels[mask] == 1
    tpr = float(flagged[mask][positives].mean()) if positives.any() else float("nan")
    return tpr, float(flagged[mask].mean())
