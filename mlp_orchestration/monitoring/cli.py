"""`mlp bench drift`: drift figures, HTML report and numpy/scipy, timed on the real data."""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mlp_orchestration.monitoring.bench import MEASUREMENTS, Measurement, ratios, run_benchmark
from mlp_orchestration.settings import PROJECT_DIR

TARGET_RATIO = 3.0


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    drift = bench.add_parser(
        "drift", help="Time drift figures and the HTML report against plain numpy/scipy."
    )
    drift.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[50_000, 200_000],
        help="Rows in the reference and in the window (default 50000 200000).",
    )
    drift.add_argument(
        "--only",
        nargs="+",
        choices=sorted(MEASUREMENTS),
        default=list(MEASUREMENTS),
        help="Measurements to run (default all).",
    )
    drift.add_argument(
        "--record",
        type=Path,
        default=None,
        help="Write a Markdown record to this file (default: do not write one).",
    )
    drift.set_defaults(handler=_bench_drift)


def format_table(results: Sequence[Measurement]) -> str:
    lines = [
        f"{'measurement':<18} {'rows':>8} {'seconds':>9} {'peak RSS MB':>12} {'before MB':>10}"
    ]
    for result in results:
        lines.append(
            f"{result.name:<18} {result.rows:>8} {result.seconds:>9.3f} "
            f"{result.peak_rss_mb:>12.0f} {result.baseline_rss_mb:>10.0f}"
        )
    return "\n".join(lines)


def format_record(results: Sequence[Measurement], found: dict[int, float]) -> str:
    """Render a Markdown record of one benchmark run."""
    lines = [
        f"# Drift benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `mlp bench drift`. Machine: {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{_cpu_count()} CPUs visible (shared with other work while measured).",
        "Data: 30 real ULB columns; reference and window of the same size. Each measurement ran "
        "in its own process; peak RSS is that process's ru_maxrss, 'before' is the RSS after "
        "loading the data and imports, before the timed computation.",
        "",
        "| measurement | what | rows | seconds | peak RSS MB | before MB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {MEASUREMENTS[result.name]} | {result.rows} | "
            f"{result.seconds:.3f} | {result.peak_rss_mb:.0f} | {result.baseline_rss_mb:.0f} |"
        )
    lines.append("")
    for rows, ratio in sorted(found.items()):
        verdict = "within" if ratio <= TARGET_RATIO else "outside"
        lines.append(
            f"- {rows} rows: drift figures take {ratio:.2f}x the numpy/scipy time "
            f"({verdict} the {TARGET_RATIO:g}x goal)."
        )
    return "\n".join(lines) + "\n"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _bench_drift(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="mlp-drift-bench-") as scratch:
        results = run_benchmark(args.rows, args.only, Path(scratch))
    found = ratios(results)
    print(format_table(results))
    if args.record is not None:
        record = args.record if args.record.is_absolute() else PROJECT_DIR / args.record
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(format_record(results, found), encoding="utf-8")
        print(f"record: {record}")
    summary = {
        "benchmark": "drift",
        "results": [result.__dict__ for result in results],
        "figures_to_numpy_ratio": {str(rows): round(ratio, 3) for rows, ratio in found.items()},
        "target_ratio": TARGET_RATIO,
    }
    print(json.dumps(summary))
    return 0
