"""Builders that turn lifecycle facts into alerts with the figures and links needed to act.

Each builder takes the facts its caller already has (scores, thresholds, versions, URLs) and
returns an ``Alert``. None of them reads a store. Build Dagster links with ``alerts.links`` and
MLflow links with ``registry.run_url`` and ``registry.version_url``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mlp_orchestration.alerts.alert import Alert, AlertError, AlertKind, Severity, format_value

RetrainOutcome = Literal["challenger", "gate_failed", "failed"]

# Per-step error text in a run-failure alert, kept short because the run link shows the trace.
MAX_STEP_ERROR_CHARS = 600


def drift_alert(
    model: str,
    *,
    partition: str,
    drifted_columns: Mapping[str, float],
    drift_share: float,
    report_url: str | None,
    action: str,
    thresholds: Mapping[str, float] | None = None,
    score_drift: float | None = None,
    asset_url: str | None = None,
    top_n: int = 10,
) -> Alert:
    """Build a DRIFT_DETECTED alert listing the most drifted columns.

    Args:
        model: model spec name.
        partition: the scoring-log window, e.g. ``2013-09-01-14:00``.
        drifted_columns: column name to drift score (an effect size: higher is more drift).
        drift_share: share of the monitored columns that drifted, 0 to 1.
        report_url: URL or path of the full drift report.
        action: what the platform did, e.g. ``retrain run requested`` or ``none: in cooldown``.
        thresholds: column name to the score above which it counts as drifted.
        score_drift: drift score of the model's output scores, if measured.
        asset_url: Dagster UI page of the drift report asset.
        top_n: number of columns listed by name.

    Raises:
        AlertError: the share is outside 0 to 1 or a score is not a number.
    """
    share = _fraction("drift_share", drift_share)
    scores = {
        column: _number(f"drift score of column {column!r}", score)
        for column, score in drifted_columns.items()
    }
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    thresholds = thresholds or {}

    lines = ["*Top drifted columns* (score; higher means more drift)"]
    for column, score in ranked[:top_n]:
        limit = thresholds.get(column)
        suffix = f" (threshold {format_value(float(limit))})" if limit is not None else ""
        lines.append(f"• `{column}` {format_value(score)}{suffix}")
    if len(ranked) > top_n:
        lines.append(f"… and {len(ranked) - top_n} more")

    fields: dict[str, Any] = {
        "Window": partition,
        "Drift share": f"{share:.1%} of columns",
        "Drifted columns": len(ranked),
    }
    if score_drift is not None:
        fields["Prediction drift"] = _number("score_drift", score_drift)
    fields["Action"] = action
    return Alert(
        kind=AlertKind.DRIFT_DETECTED,
        model=model,
        severity=Severity.WARNING,
        title=f"{model}: data drift in window {partition} ({share:.0%} of columns drifted)",
        fields=fields,
        links=_links(("Drift report", report_url), ("Dagster asset", asset_url)),
        body="\n".join(lines) if ranked else "",
    )


def gate_failure_alert(
    model: str,
    *,
    version: str,
    failures: Sequence[Mapping[str, Any]],
    run_url: str | None,
    version_url: str | None = None,
    report_url: str | None = None,
) -> Alert:
    """Build a GATE_FAILED alert naming each failed check, its measured value and threshold.

    Args:
        model: model spec name.
        version: the candidate's registered MLflow version.
        failures: one mapping per failed check with keys ``check``, ``value``, ``threshold``
            and optionally ``message``.
        run_url: Dagster UI page of the run that evaluated the gates.
        version_url: MLflow page of the candidate version.
        report_url: URL or path of the gate report.

    Raises:
        AlertError: ``failures`` is empty or an entry has no ``check``.
    """
    if not failures:
        raise AlertError(
            f"gate_failure_alert for {model} version {version} got no failures; pass at least one"
        )
    lines = []
    for index, failure in enumerate(failures):
        check = _required(failure, "check", f"gate failure #{index}", "check, value, threshold")
        line = (
            f"• *{check}*: measured {format_value(failure.get('value'))}, "
            f"threshold {format_value(failure.get('threshold'))}"
        )
        if failure.get("message"):
            line += f" — {failure['message']}"
        lines.append(line)
    checks = ", ".join(str(failure["check"]) for failure in failures)
    return Alert(
        kind=AlertKind.GATE_FAILED,
        model=model,
        severity=Severity.WARNING,
        title=f"{model} version {version} failed {_count(len(failures), 'gate check')}",
        fields={
            "Candidate version": version,
            "Failed checks": checks,
            "Outcome": "not registered as challenger",
        },
        links=_links(
            ("Dagster run", run_url), ("MLflow version", version_url), ("Gate report", report_url)
        ),
        body="\n".join(lines),
    )


def rollout_alert(
    model: str,
    *,
    from_stage: str | float,
    to_stage: str | float,
    candidate_version: str,
    metrics: Mapping[str, Any],
    breaches: Sequence[Mapping[str, Any]] = (),
    routing_version: int | None,
    champion_version: str | None = None,
    reason: str | None = None,
    links: Mapping[str, str | None] | None = None,
) -> Alert:
    """Build a ROLLOUT_STAGE alert, or a ROLLBACK alert when guard metrics were breached.

    Args:
        model: model spec name.
        from_stage: the stage left, as a name (``shadow``) or a canary share (0.05).
        to_stage: the stage entered; a share is shown as a percentage of traffic.
        candidate_version: the version being rolled out.
        metrics: guard metric name to the value measured over the stage.
        breaches: one mapping per breached guard with keys ``metric``, ``value`` and ``limit``;
            any breach makes this a critical ROLLBACK alert.
        routing_version: the routing config version written by this decision.
        champion_version: the version serving the remaining traffic.
        reason: the decision's reason as recorded in the routing history.
        links: extra label to URL pairs, e.g. the Dagster run or rollout evidence.

    Raises:
        AlertError: a breach has no ``metric``.
    """
    breach_lines = _limit_lines(breaches, "rollout breach")
    start, end = _stage(from_stage), _stage(to_stage)
    if breaches:
        first = breaches[0]
        kind, severity = AlertKind.ROLLBACK, Severity.CRITICAL
        title = (
            f"{model} version {candidate_version} rolled back at {start}: {first['metric']} "
            f"{format_value(first.get('value'))} breached limit {format_value(first.get('limit'))}"
        )
    else:
        kind, severity = AlertKind.ROLLOUT_STAGE, Severity.INFO
        title = f"{model} version {candidate_version}: rollout {start} → {end}"

    fields: dict[str, Any] = {"Candidate version": candidate_version, "Stage": f"{start} → {end}"}
    if champion_version is not None:
        fields["Champion version"] = champion_version
    if routing_version is not None:
        fields["Routing config version"] = routing_version
    if reason:
        fields["Reason"] = reason

    body = []
    if breach_lines:
        body += ["*Breached guards*", *breach_lines]
    if metrics:
        body += [
            "*Guard metrics*",
            *(f"• `{name}` {format_value(v)}" for name, v in metrics.items()),
        ]
    return Alert(
        kind=kind,
        model=model,
        severity=severity,
        title=title,
        fields=fields,
        links=_links(*(links or {}).items()),
        body="\n".join(body),
    )


def promotion_alert(
    model: str,
    *,
    version: str,
    previous_version: str | None,
    approved_by: str,
    evidence: Mapping[str, str | None],
    version_url: str | None = None,
    routing_version: int | None = None,
    reason: str | None = None,
) -> Alert:
    """Build a PROMOTION alert: who approved which version, with links to the evidence.

    Args:
        model: model spec name.
        version: the new champion version.
        previous_version: the champion it replaces, or None for the first champion.
        approved_by: the person or automation that approved the promotion.
        evidence: label to URL or path of each piece of evidence (gate report, shadow
            evaluation, rollout record).
        version_url: MLflow page of the new champion version.
        routing_version: the routing config version that made it champion.
        reason: the recorded reason.
    """
    fields: dict[str, Any] = {
        "New champion": version,
        "Previous champion": previous_version or "none",
        "Approved by": approved_by,
    }
    if routing_version is not None:
        fields["Routing config version"] = routing_version
    if reason:
        fields["Reason"] = reason
    return Alert(
        kind=AlertKind.PROMOTION,
        model=model,
        severity=Severity.INFO,
        title=f"{model} version {version} promoted to champion",
        fields=fields,
        links=_links(("MLflow version", version_url), *evidence.items()),
    )


def retrain_alert(
    model: str,
    *,
    run_id: str,
    run_url: str | None,
    trigger: str,
    outcome: RetrainOutcome | None = None,
    candidate_version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    version_url: str | None = None,
    error: str | None = None,
) -> Alert:
    """Build a RETRAIN_STARTED alert, or a RETRAIN_FINISHED alert once ``outcome`` is known.

    Args:
        model: model spec name.
        run_id: Dagster run id of the retrain run.
        run_url: Dagster UI page of that run.
        trigger: why it runs, e.g. ``drift in 3 consecutive windows`` or ``schedule``.
        outcome: None when the run starts; ``challenger`` (the candidate passed its gates),
            ``gate_failed`` or ``failed`` (the run errored) when it ends.
        candidate_version: the registered candidate version, if any.
        metrics: holdout metrics of the candidate, name to value.
        version_url: MLflow page of the candidate version.
        error: the error of a failed run.

    Raises:
        AlertError: ``outcome`` is not one of the values above.
    """
    fields: dict[str, Any] = {"Trigger": trigger, "Run id": run_id}
    if candidate_version is not None:
        fields["Candidate version"] = candidate_version
    fields.update(metrics or {})
    links = _links(("Dagster run", run_url), ("MLflow version", version_url))
    if outcome is None:
        return Alert(
            kind=AlertKind.RETRAIN_STARTED,
            model=model,
            severity=Severity.INFO,
            title=f"{model}: retraining started ({trigger})",
            fields=fields,
            links=links,
        )

    titles = {
        "challenger": (Severity.INFO, f"version {candidate_version} is the new challenger"),
        "gate_failed": (
            Severity.WARNING,
            f"candidate version {candidate_version} failed its gates",
        ),
        "failed": (Severity.CRITICAL, "the run failed"),
    }
    if outcome not in titles:
        raise AlertError(
            f"retrain outcome {outcome!r} is not one of: {', '.join(titles)}; "
            "pass None for a run that is starting"
        )
    severity, result = titles[outcome]
    fields["Outcome"] = outcome
    return Alert(
        kind=AlertKind.RETRAIN_FINISHED,
        model=model,
        severity=severity,
        title=f"{model}: retraining finished, {result}",
        fields=fields,
        links=links,
        body=f"```{error}```" if error else "",
    )


def run_failure_alert(
    job_name: str,
    *,
    run_id: str,
    error: str,
    run_url: str | None,
    failed_steps: Mapping[str, str] | None = None,
    model: str | None = None,
    partition: str | None = None,
) -> Alert:
    """Build a RUN_FAILED alert for a Dagster run that failed.

    Args:
        job_name: the Dagster job.
        run_id: the run id.
        error: the run failure message.
        run_url: Dagster UI page of the run.
        failed_steps: step key to its error message (the root cause, without the trace).
        model: the model the job belongs to, when known.
        partition: the run's partition key, if any.
    """
    fields: dict[str, Any] = {"Job": job_name, "Run id": run_id}
    if partition:
        fields["Partition"] = partition
    if failed_steps:
        fields["Failed steps"] = ", ".join(failed_steps)
    lines = [error.strip()]
    for step, message in (failed_steps or {}).items():
        text = message.strip()
        if len(text) > MAX_STEP_ERROR_CHARS:
            text = text[:MAX_STEP_ERROR_CHARS] + " …"
        lines.append(f"• `{step}`: {text}")
    return Alert(
        kind=AlertKind.RUN_FAILED,
        model=model,
        severity=Severity.CRITICAL,
        title=f"Dagster run of {job_name} failed",
        fields=fields,
        links=_links(("Dagster run", run_url)),
        body="\n".join(lines),
    )


def slo_alert(
    model: str,
    *,
    window: str,
    breaches: Sequence[Mapping[str, Any]],
    model_version: str | None = None,
    arm: str | None = None,
    report_url: str | None = None,
    links: Mapping[str, str | None] | None = None,
) -> Alert:
    """Build an SLO_BREACH alert for serving objectives missed in a window.

    Args:
        model: model spec name.
        window: the measured window, e.g. ``2013-09-01 14:00 to 15:00 UTC``.
        breaches: one mapping per missed objective with keys ``metric``, ``value``, ``limit``
            and optionally ``model_version`` and ``arm``, such as
            ``{"metric": "p99_latency_ms", "value": 81.0, "limit": 50, "arm": "canary"}``.
        model_version: the version that served the window.
        arm: ``champion`` or ``canary``.
        report_url: the serving-health asset or report.
        links: extra label to URL pairs.

    Raises:
        AlertError: ``breaches`` is empty or an entry has no ``metric``.
    """
    if not breaches:
        raise AlertError(
            f"slo_alert for {model} window {window} got no breaches; pass at least one"
        )
    lines = _limit_lines(breaches, "SLO breach")
    first = breaches[0]
    fields: dict[str, Any] = {"Window": window}
    if model_version is not None:
        fields["Model version"] = model_version
    if arm is not None:
        fields["Arm"] = arm
    return Alert(
        kind=AlertKind.SLO_BREACH,
        model=model,
        severity=Severity.CRITICAL,
        title=(
            f"{model}: SLO breached, {first['metric']} {format_value(first.get('value'))} "
            f"against limit {format_value(first.get('limit'))}"
        ),
        fields=fields,
        links=_links(("Serving health", report_url), *(links or {}).items()),
        body="\n".join(["*Missed objectives*", *lines]),
    )


def _links(*pairs: tuple[str, str | None]) -> dict[str, str]:
    return {label: url for label, url in pairs if url}


def _limit_lines(entries: Sequence[Mapping[str, Any]], item_name: str) -> list[str]:
    lines = []
    for index, entry in enumerate(entries):
        metric = _required(entry, "metric", f"{item_name} #{index}", "metric, value, limit")
        line = (
            f"• `{metric}`: measured {format_value(entry.get('value'))}, "
            f"limit {format_value(entry.get('limit'))}"
        )
        where = []
        if entry.get("model_version"):
            where.append(f"version {entry['model_version']}")
        if entry.get("arm"):
            where.append(str(entry["arm"]))
        if where:
            line += f" ({', '.join(where)})"
        lines.append(line)
    return lines


def _required(entry: Mapping[str, Any], key: str, item_name: str, keys: str) -> Any:
    if not isinstance(entry, Mapping) or entry.get(key) in (None, ""):
        raise AlertError(f"{item_name} {entry!r} has no {key!r}; pass mappings with keys {keys}")
    return entry[key]


def _fraction(name: str, value: float) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise AlertError(f"{name} {value!r} is outside 0 to 1; pass a share such as 0.35")
    return number


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise AlertError(f"{name} {value!r} is not a number") from exc
    if math.isnan(number):
        raise AlertError(f"{name} is NaN; pass a measured value")
    return number


def _stage(stage: str | float) -> str:
    if isinstance(stage, (int, float)) and not isinstance(stage, bool):
        return f"{stage:.0%} of traffic"
    return str(stage)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
