"""The drift benchmark: the figures the sensor reads, the HTML report, and plain numpy/scipy.

Each measurement runs in its own Python process (``python -m
mlp_orchestration.monitoring.bench NAME ROWS OUT``), so its peak resident memory
(``ru_maxrss``) belongs to that measurement alone. Times cover the computation only: loading the
data and importing Evidently (reported on its own) happen before the clock starts.

Data: 30 columns of the real ULB dataset (Time, V1 to V28, Amount). The reference and the window
are random samples of ``rows`` rows each. At 50,000 they are disjoint. At 200,000 they are drawn
independently and overlap, because the dataset has only 284,807 rows.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlp_orchestration.data import ulb
from mlp_orchestration.errors import MlpError
from mlp_orchestration.settings import PACKAGE_DIR, Settings
from mlp_orchestration.spec import DriftSpec, load_spec_file

logger = logging.getLogger(__name__)

COLUMNS = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
MEASUREMENTS = {
    "numpy_scipy": "numpy PSI + scipy KS + scipy Wasserstein, every column",
    "drift_figures": "compute_figures: the spec's method per column, via Evidently's stat tests",
    "html_report": "Evidently Report of ValueDrift per column, rendered to HTML",
    "evidently_preset": "Evidently DataDriftPreset() with defaults, run only",
    "evidently_import": "import evidently (rows unused)",
}


class BenchmarkError(MlpError):
    """A benchmark measurement failed."""


@dataclass(frozen=True)
class Measurement:
    """One measurement's time and memory."""

    name: str
    rows: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float


def _rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_samples(settings: Settings, rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (reference, current) samples of ``rows`` rows of the 30 ULB columns."""
    path = ulb.local_path(settings)
    if not path.is_file():
        raise BenchmarkError(
            f"the ULB dataset is not at {path}; set MLP_DATA_DIR to the folder that holds "
            f"{ulb.DATASET}/{ulb.FILE_NAME}, or run `mlp demo` once to download it"
        )
    frame = pd.read_parquet(path, columns=COLUMNS)
    rng = np.random.default_rng(seed)
    if 2 * rows <= len(frame):
        order = rng.permutation(len(frame))
        reference, current = order[:rows], order[rows : 2 * rows]
    else:
        reference = rng.choice(len(frame), rows, replace=False)
        current = rng.choice(len(frame), rows, replace=False)
    return (
        frame.iloc[reference].reset_index(drop=True),
        frame.iloc[current].reset_index(drop=True),
    )


def _numpy_scipy(reference: pd.DataFrame, current: pd.DataFrame, drift: DriftSpec) -> None:
    from scipy import stats

    from mlp_orchestration.monitoring.methods import psi

    for column in COLUMNS:
        left = reference[column].to_numpy()
        right = current[column].to_numpy()
        psi(left, right, drift.bins)
        stats.ks_2samp(left, right)
        stats.wasserstein_distance(left, right)


def _drift_figures(reference: pd.DataFrame, current: pd.DataFrame, drift: DriftSpec) -> None:
    from mlp_orchestration.monitoring.drift import compute_figures

    compute_figures(drift, reference=reference, current=current, columns=COLUMNS)


def _html_report(reference: pd.DataFrame, current: pd.DataFrame, drift: DriftSpec) -> None:
    from mlp_orchestration.monitoring.report import build_report_html

    build_report_html(
        drift, columns=COLUMNS, reference=reference, current=current, title="benchmark"
    )


def _evidently_preset(reference: pd.DataFrame, current: pd.DataFrame, drift: DriftSpec) -> None:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    Report([DataDriftPreset()]).run(current, reference)


_RUNNERS = {
    "numpy_scipy": _numpy_scipy,
    "drift_figures": _drift_figures,
    "html_report": _html_report,
    "evidently_preset": _evidently_preset,
}


def measure(name: str, rows: int, settings: Settings) -> Measurement:
    """Run one measurement in this process and return its figures."""
    drift = load_spec_file(PACKAGE_DIR / "specs" / "fraud.yaml").monitoring.drift
    if name == "evidently_import":
        started = time.perf_counter()
        import evidently  # noqa: F401

        return Measurement(name, 0, time.perf_counter() - started, _rss_mb(), 0.0)
    if name not in _RUNNERS:
        raise BenchmarkError(f"unknown measurement {name!r}; choose from {sorted(MEASUREMENTS)}")
    reference, current = load_samples(settings, rows)
    if name != "numpy_scipy":
        # Imported and registered before the clock starts; the import is measured on its own.
        from mlp_orchestration.monitoring.methods import evidently_stattest_name

        evidently_stattest_name(drift.method, drift.bins)
        import evidently.presets  # noqa: F401
    baseline = _rss_mb()
    started = time.perf_counter()
    _RUNNERS[name](reference, current, drift)
    seconds = time.perf_counter() - started
    return Measurement(name, rows, seconds, _rss_mb(), baseline)


def measure_isolated(name: str, rows: int, scratch: Path) -> Measurement:
    """Run one measurement in a fresh Python process and return its figures."""
    out = scratch / f"{name}-{rows}.json"
    command = [
        sys.executable,
        "-m",
        "mlp_orchestration.monitoring.bench",
        name,
        str(rows),
        str(out),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchmarkError(
            f"measurement {name} at {rows} rows failed (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        )
    return Measurement(**json.loads(out.read_text()))


def run_benchmark(rows: Sequence[int], names: Sequence[str], scratch: Path) -> list[Measurement]:
    """Run every measurement at every size, each in its own process."""
    results = []
    if "evidently_import" in names:
        results.append(measure_isolated("evidently_import", 0, scratch))
    for size in rows:
        for name in names:
            if name == "evidently_import":
                continue
            logger.info("measuring %s at %d rows", name, size)
            results.append(measure_isolated(name, size, scratch))
    return results


def ratios(results: Sequence[Measurement]) -> dict[int, float]:
    """Return drift_figures time divided by numpy_scipy time, per size."""
    by_key = {(result.name, result.rows): result.seconds for result in results}
    return {
        rows: by_key[("drift_figures", rows)] / by_key[("numpy_scipy", rows)]
        for (name, rows) in by_key
        if name == "drift_figures" and ("numpy_scipy", rows) in by_key
    }


def _main(argv: Sequence[str]) -> int:
    name, rows, out = argv[0], int(argv[1]), Path(argv[2])
    measurement = measure(name, rows, Settings())
    out.write_text(json.dumps(asdict(measurement)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
