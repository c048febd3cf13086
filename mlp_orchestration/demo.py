"""`mlp demo`: the whole loop on the real ULB data, through the Dagster instance in MLP_HOME.

1. The lifecycle job loads the data, snapshots day one, checks, trains, gates and promotes.
2. The scoring service starts on loopback, and the first hours of day two are replayed
   through it; their labels arrive a few seconds later.
3. Drift reports are materialized for those hours and the retrain sensor is evaluated. The
   retrain it requests runs through Dagster; when it requests none (no sustained drift, or its
   cooldown after an earlier run), nothing is retrained or rolled out.
4. The new candidate, if its gates pass, is rolled out on the following traffic: shadow,
   canary stages, promotion or rollback.
5. The rest of day two is replayed, and drift, delayed-label performance and serving health are
   reported for every replayed hour; the retrain sensor is evaluated again.

Each stage prints what it did and how long it took; the end prints a summary. Running the demo
again trains a new candidate and gates it against the existing champion.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from mlp_orchestration import keys
from mlp_orchestration.instance import QUIET_LOGGERS, open_instance
from mlp_orchestration.lifecycle import (
    LifecycleResult,
    ensure_champion,
    model_status,
    run_lifecycle,
)
from mlp_orchestration.replay import ReplayReport, TrafficReplay
from mlp_orchestration.resources import MlpResource
from mlp_orchestration.service_process import ScoringServiceProcess
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec, get_spec, load_specs, parse_as_of
from mlp_orchestration.warehouse import drift_metrics, get_engine

logger = logging.getLogger(__name__)

__all__ = ["DemoOptions", "DemoSummary", "ensure_champion", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """Options of a demo run: the model, the replayed window and the replay speed."""

    model: str = "fraud"
    replay_start: datetime = parse_as_of("2013-09-02T00:00:00Z")  # type: ignore[assignment]
    first_replay_hours: int = 6
    replay_end: datetime = parse_as_of("2013-09-03T00:00:00Z")  # type: ignore[assignment]
    rate: float = 2500.0
    label_delay_s: float = 3.0
    serve_workers: int = 1
    rollout: bool = True


@dataclass
class DemoSummary:
    model: str
    stages: list[tuple[str, float]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.stages.append((name, elapsed))
            print(f"    done in {elapsed:.1f} s", flush=True)

    def note(self, line: str) -> None:
        self.lines.append(line)
        print(f"    {line}", flush=True)


def describe_lifecycle(result: LifecycleResult, summary: DemoSummary) -> None:
    if result.rows_loaded is not None:
        summary.note(f"rows loaded: {result.rows_loaded:,}")
    summary.note(f"snapshot hash: {result.snapshot_hash}")
    passed = sum(result.checks.values())
    summary.note(f"checks passed: {passed} of {len(result.checks)}")
    candidate = result.candidate
    if candidate is not None:
        summary.note(
            f"model version: {candidate.version} (holdout PR-AUC "
            f"{candidate.metrics['holdout_pr_auc']:.4f}, ROC-AUC "
            f"{candidate.metrics['holdout_roc_auc']:.4f})"
        )
    report = result.gate_report
    if report is not None:
        summary.note(f"gate verdicts: {report.verdicts()}")
        for failure in report.failures:
            summary.note(f"  failed: {failure['message']}")
        summary.note(f"gate report: {report.report_path}")
    if result.promotion is not None:
        summary.note(f"promotion: {result.promotion.reason}")
    summary.note(f"Dagster run: {result.run_id}")


def describe_replay(report: ReplayReport, summary: DemoSummary) -> None:
    summary.note(
        f"replayed {report.sent:,} transactions from {report.window_start} to "
        f"{report.window_end} at {report.rate:,.0f}/s: {report.scored:,} scored, "
        f"{report.failed} failed, arms {report.arms}, labels delivered {report.labels_delivered:,}"
    )


def run_demo(settings: Settings, options: DemoOptions | None = None) -> DemoSummary:
    """Run the loop for ``options.model`` and print what happened at each stage."""
    options = options or DemoOptions()
    spec = get_spec(load_specs(settings.specs_dir), options.model)
    summary = DemoSummary(model=spec.name)
    print(f"MLP_HOME: {settings.home_dir}\nMLP_DATA_DIR: {settings.data_path}", flush=True)
    instance = open_instance(settings)
    # The library never imports assets/ or sensors/; the assembled code location hands them over.
    from mlp_orchestration.definitions import build_definitions

    definitions = build_definitions(settings)

    with summary.stage("lifecycle: load, snapshot, check, train, gate, promote"):
        result = run_lifecycle(settings, instance, spec, action=keys.LIFECYCLE)
        describe_lifecycle(result, summary)
    ensure_champion(settings, spec.name)

    log_path = settings.home_dir / "logs" / "scoring-service.log"
    with summary.stage("start the scoring service"):
        service = ScoringServiceProcess(workers=options.serve_workers, log_path=log_path).start()
        summary.note(f"serving at {service.url} (log: {log_path})")
        # Assets that read the service's /metrics (serving_health) find it through this setting.
        os.environ["MLP_SCORING_URL"] = service.url
    try:
        _monitor_and_roll_out(settings, instance, definitions, spec, options, service, summary)
    finally:
        with summary.stage("stop the scoring service (flushes the prediction log)"):
            code = service.stop()
            summary.note(f"exit code {code}")

    summary.status = model_status(settings, spec)
    print_summary(summary)
    return summary


def _monitor_and_roll_out(
    settings: Settings,
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    spec: ModelSpec,
    options: DemoOptions,
    service: ScoringServiceProcess,
    summary: DemoSummary,
) -> None:
    first_end = options.replay_start + timedelta(hours=options.first_replay_hours)
    with summary.stage(f"replay day two until {first_end:%H:%M} through the champion"):
        report = _replay(settings, spec, service.url, options.replay_start, first_end, options)
        describe_replay(report, summary)

    with summary.stage("drift reports for the replayed hours, then the retrain sensor"):
        decision = _drift_and_sensor(instance, definitions, spec, options.replay_start, first_end)
        summary.note(f"retrain sensor: {decision.decision}: {decision.reason}")
        summary.facts["first_sensor_decision"] = decision

    if not options.rollout:
        return
    as_of = _retrain_as_of(spec, decision.triggering_partition) or first_end
    if decision.decision != "retrain":
        summary.note(
            "the retrain sensor requested no retrain, so the demo trains nothing and rolls "
            "nothing out; the rest of day two is replayed through the champion"
        )
        retrain = None
    else:
        with summary.stage(
            f"retrain on data until {as_of:%Y-%m-%d %H:%M} (the sensor's run) and gate it"
        ):
            tags = {"mlp/trigger": "drift", "dagster/run_key": decision.run_key or ""}
            if decision.triggering_partition:
                tags["mlp/drift_partition"] = decision.triggering_partition
            retrain = run_lifecycle(
                settings, instance, spec, action=keys.RETRAIN, as_of=as_of, tags=tags
            )
            describe_lifecycle(retrain, summary)

    rollout_end = options.replay_end
    if (
        retrain is not None
        and retrain.promotion is not None
        and (retrain.promotion.action == "challenger")
    ):
        with summary.stage(f"roll out v{retrain.candidate.version}: shadow, canary, promote"):
            outcome = _roll_out(
                settings,
                instance,
                definitions,
                spec,
                options,
                service,
                retrain.candidate.version,
                start=as_of,
            )
            for step in outcome.steps:
                summary.note(f"{step['action']}: {step['message']}")
            summary.note(f"rollout {outcome.status}: {outcome.message}")
            summary.facts["rollout"] = outcome
            if outcome.replay is not None:
                describe_replay(outcome.replay, summary)
                rollout_end = _last_sent_time(
                    settings, spec, as_of, options.replay_end, outcome.replay.sent
                )
    else:
        if retrain is not None:
            summary.note("no challenger from the retrain, so nothing to roll out")
        rollout_end = as_of

    if rollout_end < options.replay_end:
        with summary.stage(f"replay the rest of day two from {rollout_end:%H:%M:%S}"):
            report = _replay(settings, spec, service.url, rollout_end, options.replay_end, options)
            describe_replay(report, summary)

    with summary.stage("drift, performance and serving health for every replayed hour"):
        decision = _drift_and_sensor(instance, definitions, spec, first_end, options.replay_end)
        summary.note(f"retrain sensor: {decision.decision}: {decision.reason}")
        summary.facts["second_sensor_decision"] = decision
        _materialize(instance, definitions, spec, [keys.MODEL_PERFORMANCE, keys.SERVING_HEALTH])
        _describe_monitoring(settings, instance, spec, summary)


def _replay(
    settings: Settings,
    spec: ModelSpec,
    url: str,
    start: datetime,
    end: datetime,
    options: DemoOptions,
) -> ReplayReport:
    replay = TrafficReplay(
        settings,
        spec,
        start=start,
        end=end,
        rate=options.rate,
        label_delay_s=options.label_delay_s,
        scoring_url=url,
        batch_size=25,
    )
    return replay.run(flush_labels=True)


def _roll_out(
    settings: Settings,
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    spec: ModelSpec,
    options: DemoOptions,
    service: ScoringServiceProcess,
    candidate_version: str,
    *,
    start: datetime,
) -> Any:
    from mlp_orchestration.rollout.driver import drive_rollout

    shadow = definitions.get_assets_def(keys.asset_key(spec.name, keys.SHADOW_EVALUATION))
    return drive_rollout(
        settings,
        spec,
        candidate_version=candidate_version,
        scoring_url=service.url,
        replay_start=start,
        replay_end=options.replay_end,
        rate=options.rate / 2,
        label_delay_s=options.label_delay_s,
        actor=settings.actor,
        instance=instance,
        shadow_assets=[shadow],
    )


def _last_sent_time(
    settings: Settings, spec: ModelSpec, start: datetime, end: datetime, sent: int
) -> datetime:
    """Event time just after the last transaction a replay of [start, end) sent."""
    from mlp_orchestration.replay import load_window

    window = load_window(get_engine(settings.warehouse_url), spec, start, end)
    if sent >= len(window):
        return end
    # Transactions share seconds; restarting one second later skips at most a few of them
    # rather than scoring any twice.
    return window[spec.event_time].iloc[max(sent - 1, 0)].to_pydatetime() + timedelta(seconds=1)


def _retrain_as_of(spec: ModelSpec, partition: str | None) -> datetime | None:
    """The cut-off the retrain sensor gives its run: the end of the triggering window."""
    if not partition:
        return None
    start = datetime.strptime(partition, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    step = timedelta(hours=1) if spec.monitoring.drift.partition == "hourly" else timedelta(days=1)
    return start + step


def _hour_keys(start: datetime, end: datetime) -> list[str]:
    keys_ = []
    current = start
    while current < end:
        keys_.append(current.strftime("%Y-%m-%d-%H:%M"))
        current += timedelta(hours=1)
    return keys_


def _drift_and_sensor(
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    spec: ModelSpec,
    start: datetime,
    end: datetime,
) -> Any:
    from mlp_orchestration.monitoring.summary import drift_and_retrain_summary

    return drift_and_retrain_summary(
        definitions.get_assets_def(keys.asset_key(spec.name, keys.DRIFT_REPORT)),
        definitions.resolve_sensor_def(keys.sensor_name(spec.name, keys.RETRAIN_ON_DRIFT)),
        instance=instance,
        model=spec.name,
        partition_keys=_hour_keys(start, end),
        resources={keys.RESOURCE_KEY: MlpResource()},
    )


def _materialize(
    instance: dg.DagsterInstance, definitions: dg.Definitions, spec: ModelSpec, names: list[str]
) -> None:
    assets = [definitions.get_assets_def(keys.asset_key(spec.name, name)) for name in names]
    dg.materialize(
        assets,
        instance=instance,
        resources={keys.RESOURCE_KEY: MlpResource()},
        tags={"mlp/trigger": "demo"},
        run_config=QUIET_LOGGERS,
        raise_on_error=False,
    )


def _describe_monitoring(
    settings: Settings, instance: dg.DagsterInstance, spec: ModelSpec, summary: DemoSummary
) -> None:
    engine = get_engine(settings.warehouse_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                drift_metrics.c.status, drift_metrics.c.dataset_drift, drift_metrics.c.report_path
            ).where(drift_metrics.c.model == spec.name)
        ).all()
    drifted = sum(1 for row in rows if row.dataset_drift)
    reports = [row.report_path for row in rows if row.report_path]
    summary.note(f"drift_metrics: {len(rows)} windows, {drifted} drifted")
    if reports:
        summary.note(f"a drift report: {reports[-1]}")
    for name in (keys.MODEL_PERFORMANCE, keys.SERVING_HEALTH):
        event = instance.get_latest_materialization_event(keys.asset_key(spec.name, name))
        if event is None:
            summary.note(f"{name}: not materialized")
            continue
        metadata = event.asset_materialization.metadata
        shown = {
            k: v.value
            for k, v in metadata.items()
            if not isinstance(v.value, dict | list) and len(str(v.value)) < 80
        }
        summary.note(f"{name}: {dict(list(shown.items())[:8])}")


def print_summary(summary: DemoSummary) -> None:
    status = summary.status
    print("\nSummary", flush=True)
    print(f"  champion version: {status.get('champion_version')}")
    print(f"  routing config version: {status.get('routing_version')}")
    holdout = status.get("holdout") or {}
    if holdout:
        print(
            f"  champion holdout PR-AUC {holdout['pr_auc']:.4f}, ROC-AUC {holdout['roc_auc']:.4f}"
        )
    print(f"  champion snapshot: {status.get('snapshot_hash')}")

    for key in ("first_sensor_decision", "second_sensor_decision"):
        decision = summary.facts.get(key)
        if decision is not None:
            print(
                f"  retrain sensor ({key.split('_')[0]} evaluation): {decision.decision}, "
                f"because {decision.reason}"
            )
    rollout = summary.facts.get("rollout")
    if rollout is not None:
        print(
            f"  rollout of v{rollout.candidate_version}: {rollout.status}, routing versions "
            f"{rollout.routing_versions}"
        )

    print("  stage timings:")
    for name, seconds in summary.stages:
        print(f"    {seconds:7.1f} s  {name}")
    print(f"    {sum(s for _, s in summary.stages):7.1f} s  total")
    print(
        "\nNext: `mlp routing history fraud`, `mlp status`, `mlp ui` (Dagster) and "
        "`mlflow ui --backend-store-uri <MLflow tracking URI>`."
    )
