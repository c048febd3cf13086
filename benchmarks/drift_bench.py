"""Drift benchmark: the sensor's figures and the HTML report against plain numpy/scipy.

Run from the repository root: ``.venv/bin/python benchmarks/drift_bench.py``. It runs the same
measurements as ``mlp bench drift`` and writes a Markdown record under ``benchmarks/results/``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from mlp_orchestration.cli import main

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    record = RESULTS / f"drift-{datetime.now(UTC):%Y%m%d}.md"
    sys.exit(main(["bench", "drift", "--record", str(record), *sys.argv[1:]]))
