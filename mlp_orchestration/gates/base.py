"""Types shared by the gates: one measured check, one gate's verdict, and what gates read."""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.training import CandidateModel

Comparison = Literal[">=", "<="]
_OPERATORS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class GateCheck:
    """One measured figure compared with its threshold."""

    check: str
    value: float | None
    threshold: float
    comparison: Comparison
    passed: bool
    message: str

    @classmethod
    def compare(
        cls, check: str, value: float | None, threshold: float, comparison: Comparison, what: str
    ) -> GateCheck:
        if value is None or not np.isfinite(value):
            return cls(
                check,
                None,
                threshold,
                comparison,
                False,
                f"{check}: {what} could not be measured (threshold {comparison} {threshold:g})",
            )
        passed = bool(_OPERATORS[comparison](value, threshold))
        verdict = "passed" if passed else "FAILED"
        margin = value - threshold
        return cls(
            check,
            float(value),
            float(threshold),
            comparison,
            passed,
            f"{check} {verdict}: {what} is {value:.4f}, threshold {comparison} {threshold:.4f} "
            f"(margin {margin:+.4f})",
        )


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    checks: list[GateCheck]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    @property
    def verdict(self) -> str:
        """passed, failed, or skipped when the gate had nothing to check (it still lets through)."""
        if not self.checks:
            return "skipped"
        return "passed" if self.passed else "failed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateContext:
    """What every gate may read: the candidate, its holdout and, if any, the champion's scores."""

    settings: Settings
    spec: ModelSpec
    candidate: CandidateModel
    holdout: pd.DataFrame
    candidate_scores: np.ndarray
    champion_version: str | None = None
    champion_scores: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.holdout[self.spec.label].to_numpy()
