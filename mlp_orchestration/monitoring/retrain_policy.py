"""The retrain-on-drift sensor's decision as a plain function, without Dagster.

A retrain is requested when the newest drift window and the windows right before it, back to
back, all drifted for ``retrain.consecutive_windows`` windows, unless a retrain was requested or
started within ``retrain.cooldown`` (wall-clock). A window with insufficient data has no verdict:
as the newest window it stops any decision, and inside a streak it breaks the streak, because the
drift there is unknown. The run key names the triggering report (its partition and event id), so
one report never triggers twice. The cursor moves past every report seen, retrain or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.monitoring.drift import STATUS_INSUFFICIENT, STATUS_OK

RETRAIN = "retrain"
SKIP = "skip"


@dataclass(frozen=True)
class DriftReportRecord:
    """One ``drift_report`` materialization, as the sensor reads it back."""

    storage_id: int
    partition_key: str
    window_start: datetime
    window_end: datetime
    status: str
    drift_detected: bool | None
    drift_share: float | None = None
    score_drift: float | None = None
    reason: str = ""
    drifted_scores: Mapping[str, float] = field(default_factory=dict)
    report_url: str | None = None

    @classmethod
    def from_metadata(
        cls, *, storage_id: int, partition_key: str, metadata: Mapping[str, Any]
    ) -> DriftReportRecord:
        """Build a record from a materialization's raw metadata values.

        Raises:
            ConfigurationError: a key the drift asset always writes is missing or malformed.
        """
        try:
            scores = metadata.get("column_scores") or {}
            drifted = metadata.get("drifted_columns") or []
            return cls(
                storage_id=int(storage_id),
                partition_key=partition_key,
                window_start=datetime.fromisoformat(metadata["window_start"]),
                window_end=datetime.fromisoformat(metadata["window_end"]),
                status=str(metadata["status"]),
                drift_detected=metadata.get("drift_detected"),
                drift_share=metadata.get("drift_share"),
                score_drift=metadata.get("score_drift"),
                reason=str(metadata.get("reason", "")),
                drifted_scores={name: float(scores[name]) for name in drifted if name in scores},
                report_url=metadata.get("report_url"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"drift report event {storage_id} (partition {partition_key}) lacks readable "
                f"window_start, window_end and status metadata ({exc!r}); materialize the "
                "partition again with the current drift_report asset"
            ) from exc


@dataclass(frozen=True)
class RetrainCursor:
    """The sensor's state between ticks."""

    last_storage_id: int = 0
    last_requested_at: datetime | None = None
    last_run_key: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_storage_id": self.last_storage_id,
                "last_requested_at": (
                    self.last_requested_at.isoformat() if self.last_requested_at else None
                ),
                "last_run_key": self.last_run_key,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> RetrainCursor:
        """Parse a cursor; an empty one starts from the beginning.

        Raises:
            ConfigurationError: the text is not a cursor this sensor wrote.
        """
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            requested = raw.get("last_requested_at")
            return cls(
                last_storage_id=int(raw.get("last_storage_id", 0)),
                last_requested_at=datetime.fromisoformat(requested) if requested else None,
                last_run_key=raw.get("last_run_key"),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"retrain sensor cursor {text!r} is not valid ({exc}); clear the sensor's "
                "cursor in the Dagster UI so it starts again"
            ) from exc


@dataclass(frozen=True)
class RetrainDecision:
    """The policy's decision, its reason and the cursor to store."""

    decision: Literal["retrain", "skip"]
    reason: str
    cursor: RetrainCursor
    run_key: str | None = None
    triggering: DriftReportRecord | None = None

    @property
    def triggering_partition(self) -> str | None:
        return self.triggering.partition_key if self.triggering else None


def run_key_for(model: str, record: DriftReportRecord) -> str:
    return f"{model}-drift-{record.partition_key}-event-{record.storage_id}"


def latest_per_window(records: Sequence[DriftReportRecord]) -> list[DriftReportRecord]:
    """Keep the newest report of each partition, ordered by window start."""
    newest: dict[str, DriftReportRecord] = {}
    for record in records:
        current = newest.get(record.partition_key)
        if current is None or record.storage_id > current.storage_id:
            newest[record.partition_key] = record
    return sorted(newest.values(), key=lambda record: record.window_start)


def _streak(windows: list[DriftReportRecord]) -> int:
    count = 0
    following: DriftReportRecord | None = None
    for record in reversed(windows):
        if record.status != STATUS_OK or not record.drift_detected:
            break
        if following is not None and record.window_end != following.window_start:
            break
        count += 1
        following = record
    return count


def decide_retrain(
    model: str,
    records: Sequence[DriftReportRecord],
    cursor: RetrainCursor,
    *,
    consecutive_windows: int,
    cooldown: timedelta,
    now: datetime,
    last_retrain_at: datetime | None = None,
) -> RetrainDecision:
    """Decide whether the drift reports call for a retrain run now.

    Args:
        model: Model name, used in the run key.
        records: Recent drift report materializations (several per partition allowed).
        cursor: The state stored by the previous evaluation.
        consecutive_windows: Back-to-back drifted windows needed to retrain.
        cooldown: Minimum wall-clock time between two retrains.
        now: The current time (aware UTC).
        last_retrain_at: When the latest retrain run started, from any trigger, if known.
    """
    newest_id = max((record.storage_id for record in records), default=cursor.last_storage_id)
    advanced = replace(cursor, last_storage_id=max(newest_id, cursor.last_storage_id))
    if not any(record.storage_id > cursor.last_storage_id for record in records):
        return RetrainDecision(
            SKIP, f"no new drift report after event {cursor.last_storage_id}", advanced
        )

    windows = latest_per_window(records)
    latest = windows[-1]
    if latest.status == STATUS_INSUFFICIENT or latest.drift_detected is None:
        return RetrainDecision(
            SKIP,
            f"window {latest.partition_key} has no verdict ({latest.reason or latest.status})",
            advanced,
        )
    if not latest.drift_detected:
        return RetrainDecision(
            SKIP,
            f"no drift in window {latest.partition_key}: {latest.reason}".rstrip(": "),
            advanced,
        )

    streak = _streak(windows)
    if streak < consecutive_windows:
        return RetrainDecision(
            SKIP,
            f"drift in {streak} back-to-back window(s) up to {latest.partition_key}; "
            f"{consecutive_windows} needed",
            advanced,
        )

    run_key = run_key_for(model, latest)
    if run_key == cursor.last_run_key:
        return RetrainDecision(
            SKIP, f"report {run_key} already requested a retrain", advanced, run_key=run_key
        )
    previous = max(
        (moment for moment in (cursor.last_requested_at, last_retrain_at) if moment is not None),
        default=None,
    )
    if previous is not None and now - previous < cooldown:
        return RetrainDecision(
            SKIP,
            f"drift in {streak} back-to-back windows up to {latest.partition_key}, but the last "
            f"retrain was at {previous.isoformat()}; cooldown of {cooldown} lasts until "
            f"{(previous + cooldown).isoformat()}",
            advanced,
            triggering=latest,
        )

    return RetrainDecision(
        RETRAIN,
        f"drift in {streak} back-to-back windows up to {latest.partition_key} "
        f"({consecutive_windows} needed); latest: {latest.reason}",
        replace(advanced, last_requested_at=now, last_run_key=run_key),
        run_key=run_key,
        triggering=latest,
    )
