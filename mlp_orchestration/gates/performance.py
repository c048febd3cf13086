"""Performance gate: holdout PR-AUC and ROC-AUC above the spec's floors, and no worse than the
champion on the same holdout by more than the spec's tolerance."""

from __future__ import annotations

from datetime import datetime

from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult
from mlp_orchestration.training import score_metrics


def performance_gate(context: GateContext) -> GateResult:
    floors = context.spec.gates.performance
    metrics = score_metrics(context.labels, context.candidate_scores)
    checks = [
        GateCheck.compare(
            "holdout_pr_auc", metrics["pr_auc"], floors.min_pr_auc, ">=", "holdout PR-AUC"
        ),
        GateCheck.compare(
            "holdout_roc_auc", metrics["roc_auc"], floors.min_roc_auc, ">=", "holdout ROC-AUC"
        ),
    ]
    notes = []
    if context.champion_scores is None:
        notes.append("no champion yet: the comparison with the champion is skipped")
    else:
        overlap = _champion_overlap(context)
        if overlap is not None:
            checks.append(overlap)
        champion = score_metrics(context.labels, context.champion_scores)
        context.extra["champion_holdout"] = champion
        threshold = champion["pr_auc"] - floors.max_drop_vs_champion
        checks.append(
            GateCheck.compare(
                "pr_auc_vs_champion",
                metrics["pr_auc"],
                threshold,
                ">=",
                f"holdout PR-AUC against champion v{context.champion_version}'s "
                f"{champion['pr_auc']:.4f} minus tolerance {floors.max_drop_vs_champion}",
            )
        )
    return GateResult("performance", all(c.passed for c in checks), checks, notes)


def _champion_overlap(context: GateContext) -> GateCheck | None:
    """Fail when the champion trained on part of this holdout, which makes it look better."""
    champion_end = context.extra.get("champion_training_end")
    holdout_start, holdout_end = context.candidate.windows.get("holdout", (None, None))
    if champion_end is None or holdout_start is None or holdout_end is None:
        return None
    end = min(datetime.fromisoformat(champion_end), datetime.fromisoformat(holdout_end))
    start = datetime.fromisoformat(holdout_start)
    overlap_hours = max(0.0, (end - start).total_seconds() / 3600)
    check = GateCheck.compare(
        "champion_holdout_overlap_hours",
        overlap_hours,
        0.0,
        "<=",
        f"hours of this holdout (from {holdout_start}) that champion v{context.champion_version} "
        f"trained or validated on (its data ends {champion_end})",
    )
    if check.passed:
        return check
    return GateCheck(
        check.check,
        check.value,
        check.threshold,
        check.comparison,
        False,
        check.message + "; the comparison would favour the champion, so train the candidate "
        "with a later as_of than the champion's",
    )
