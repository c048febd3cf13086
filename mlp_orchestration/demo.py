"""`mlp demo`: the whole loop on the real ULB data, through the Dagster instance in MLP_HOME.

Each stage prints what it did and how long it took; the end prints a summary. Running the demo
again trains a new candidate and gates it against the existing champion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mlp_orchestration import keys
from mlp_orchestration.instance import open_instance
from mlp_orchestration.lifecycle import (
    LifecycleResult,
    ensure_champion,
    model_status,
    run_lifecycle,
)
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import get_spec, load_specs

logger = logging.getLogger(__name__)

__all__ = ["DemoSummary", "ensure_champion", "run_demo"]


@dataclass
class DemoSummary:
    model: str
    stages: list[tuple[str, float]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

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


def run_demo(settings: Settings, *, model: str = "fraud") -> DemoSummary:
    """Run the lifecycle for ``model`` and print what happened at each stage."""
    spec = get_spec(load_specs(settings.specs_dir), model)
    summary = DemoSummary(model=model)
    print(f"MLP_HOME: {settings.home_dir}\nMLP_DATA_DIR: {settings.data_path}", flush=True)
    instance = open_instance(settings)

    with summary.stage("lifecycle: load, snapshot, check, train, gate, promote"):
        result = run_lifecycle(settings, instance, spec, action=keys.LIFECYCLE)
        describe_lifecycle(result, summary)

    summary.status = model_status(settings, spec)
    print_summary(summary)
    return summary


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
    print("  stage timings:")
    for name, seconds in summary.stages:
        print(f"    {seconds:7.1f} s  {name}")
    print(f"    {sum(s for _, s in summary.stages):7.1f} s  total")
