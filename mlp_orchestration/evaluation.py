"""Running every gate on a candidate, recording the verdicts in the registry, and the report."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve
from sqlalchemy.engine import Engine

from mlp_orchestration import registry, reporting
from mlp_orchestration.errors import DataVerificationError
from mlp_orchestration.features import load_snapshot, split_frame
from mlp_orchestration.gates import GATES, GateContext, GateResult
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import CandidateModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateReport:
    model: str
    version: str
    passed: bool
    champion_version: str | None
    results: list[GateResult]
    report_path: str
    champion_holdout: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [
            {"gate": result.gate, **check.__dict__}
            for result in self.results
            for check in result.failures
        ]

    def verdicts(self) -> dict[str, str]:
        return {r.gate: r.verdict for r in self.results}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest for routing evidence, alerts and asset metadata."""
        return {
            "model": self.model,
            "version": self.version,
            "verdict": "passed" if self.passed else "failed",
            "gates": self.verdicts(),
            "failures": [f["message"] for f in self.failures],
            "champion_version": self.champion_version,
            "report_path": self.report_path,
        }


def holdout_frame(engine: Engine, spec: ModelSpec, candidate: CandidateModel) -> pd.DataFrame:
    """The candidate's holdout rows, read back from its snapshot."""
    frame = load_snapshot(engine, spec.name, candidate.snapshot_hash)
    bounds = {
        split: (pd.Timestamp(start), pd.Timestamp(end))
        for split, (start, end) in candidate.windows.items()
    }
    return split_frame(frame, spec, bounds)["holdout"]


def training_path_scores(
    spec: ModelSpec, candidate: CandidateModel, holdout: pd.DataFrame
) -> np.ndarray:
    """The holdout scores training computed, aligned to the holdout rows by entity key."""
    scores = pd.read_parquet(candidate.holdout_scores_path)
    merged = holdout[[spec.entity_key]].merge(scores, on=spec.entity_key, how="left")
    if merged["score"].isna().any() or len(merged) != len(holdout):
        raise DataVerificationError(
            f"holdout scores at {candidate.holdout_scores_path} do not cover the holdout rows of "
            f"snapshot {candidate.snapshot_hash[:12]}; train the candidate again"
        )
    return merged["score"].to_numpy(dtype=np.float64)


def champion_scores(
    settings: Settings, spec: ModelSpec, champion_version: str, holdout: pd.DataFrame
) -> np.ndarray:
    with tempfile.TemporaryDirectory() as scratch:
        path = registry.download_native_model(
            settings, spec.name, champion_version, Path(scratch) / "model.lgb"
        )
        model = NativeModel.from_file(path, version=champion_version)
    return model.predict_matrix(holdout[spec.feature_names].to_numpy(dtype=np.float64))


def evaluate_candidate(
    settings: Settings, engine: Engine, spec: ModelSpec, candidate: CandidateModel
) -> GateReport:
    """Run every gate, tag the version with the verdicts, and write the HTML gate report."""
    client = registry.configure(settings)
    holdout = holdout_frame(engine, spec, candidate)
    champion = registry.alias_version(client, spec.name, registry.CHAMPION)
    if champion == candidate.version:
        champion = None
    context = GateContext(
        settings=settings,
        spec=spec,
        candidate=candidate,
        holdout=holdout,
        candidate_scores=training_path_scores(spec, candidate, holdout),
        champion_version=champion,
        champion_scores=champion_scores(settings, spec, champion, holdout) if champion else None,
    )
    candidate_tags = registry.get_version(client, spec.name, candidate.version).tags
    context.extra["candidate_model_sha256"] = candidate_tags.get("model_sha256")
    if champion:
        tags = registry.get_version(client, spec.name, champion).tags
        # The champion saw data up to the start of its own holdout (training and validation).
        context.extra["champion_training_end"] = tags.get("holdout_start")
        context.extra["champion_model_sha256"] = tags.get("model_sha256")
    results = [gate(context) for gate in GATES.values()]
    passed = all(result.passed for result in results)
    path = settings.reports_dir / spec.name / "gates" / f"v{candidate.version}.html"
    report = GateReport(
        model=spec.name,
        version=candidate.version,
        passed=passed,
        champion_version=champion,
        results=results,
        report_path=str(path),
        champion_holdout=context.extra.get("champion_holdout", {}),
    )
    reporting.write_report(path, render_gate_report(report, context))
    tags = {f"gate.{r.gate}": r.verdict for r in results}
    tags["gate_verdict"] = "passed" if passed else "failed"
    registry.set_version_tags(client, spec.name, candidate.version, tags)
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_artifact(str(path), artifact_path="gates")
    level = logging.INFO if passed else logging.WARNING
    logger.log(level, "gates of %s v%s: %s", spec.name, candidate.version, report.verdicts())
    return report


def render_gate_report(report: GateReport, context: GateContext) -> str:
    candidate = context.candidate
    rows = []
    for result in report.results:
        for check in result.checks:
            rows.append(
                (
                    result.gate,
                    check.check,
                    "n/a" if check.value is None else check.value,
                    f"{check.comparison} {check.threshold:g}",
                    reporting.Verdict(check.passed),
                )
            )
    notes = [f"{r.gate}: {note}" for r in report.results for note in r.notes]
    curves = {
        f"candidate v{candidate.version}": _pr_curve(context.labels, context.candidate_scores)
    }
    if context.champion_scores is not None:
        curves[f"champion v{report.champion_version}"] = _pr_curve(
            context.labels, context.champion_scores
        )
    sections = [
        (
            "Verdict",
            reporting.key_values(
                {
                    "verdict": reporting.Verdict(report.passed),
                    "candidate version": candidate.version,
                    "champion version": report.champion_version or "none yet",
                    "snapshot": candidate.snapshot_hash,
                    "holdout window": " to ".join(candidate.windows.get("holdout", ("?", "?"))),
                    "holdout rows": f"{len(context.holdout):,}",
                    "holdout positives": int(context.labels.sum()),
                    "MLflow run": candidate.run_id,
                }
            ),
        ),
        ("Checks", reporting.table(["gate", "check", "measured", "threshold", "result"], rows)),
        (
            "Precision-recall on the holdout",
            reporting.line_chart(
                curves, x_label="recall", y_label="precision", x_range=(0, 1), y_range=(0, 1)
            ),
        ),
    ]
    if notes:
        sections.append(
            ("Notes", "<ul>" + "".join(f"<li>{reporting.escape(n)}</li>" for n in notes) + "</ul>")
        )
    return reporting.page(
        f"Gate report: {report.model} v{report.version}",
        sections,
        subtitle="Performance, segment, bias and consistency gates on the candidate's holdout.",
    )


def _pr_curve(labels: np.ndarray, scores: np.ndarray, points: int = 200) -> tuple[list, list]:
    precision, recall, _ = precision_recall_curve(labels, scores)
    step = max(1, len(recall) // points)
    return recall[::step].tolist(), precision[::step].tolist()
