"""The drift report's time partitions, from the spec."""

from __future__ import annotations

import dagster as dg

from mlp_orchestration.spec import DriftSpec


def drift_partitions(drift: DriftSpec) -> dg.TimeWindowPartitionsDefinition:
    """Return hourly or daily UTC partitions from ``partitions_start`` to ``partitions_end``.

    ``partitions_end`` is exclusive: with an end of 2013-09-03T00:00Z the last hourly partition is
    2013-09-02-23:00. Without an end, a partition is added each time a window closes.
    """
    definition = (
        dg.HourlyPartitionsDefinition
        if drift.partition == "hourly"
        else dg.DailyPartitionsDefinition
    )
    return definition(
        start_date=drift.partitions_start,
        end_date=drift.partitions_end,
        timezone="UTC",
    )
