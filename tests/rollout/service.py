"""A real ``mlp serve`` process on a free loopback port, and ULB transactions in the warehouse."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import ULB_FEATURE_COLUMNS, get_engine, transactions

ROUTING_POLL_S = 0.5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_transactions(settings: Settings, frame: pd.DataFrame) -> None:
    """Insert real ULB rows (with loader-assigned ids and event times) into ``transactions``."""
    columns = ["transaction_id", "event_time", "Time", *ULB_FEATURE_COLUMNS, "Class"]
    rows = frame[columns].rename(columns={"Time": "time_seconds"}).to_dict("records")
    for row in rows:
        row["event_time"] = row["event_time"].to_pydatetime()
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(transactions.insert(), rows)


class ScoringProcess:
    """``python -m mlp_orchestration.cli serve`` with the test's settings in its environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLP_", "MLFLOW_"))}
        env.update(
            {
                "MLP_HOME": str(settings.home_dir),
                "MLP_DATA_DIR": str(settings.data_path),
                "MLP_MLFLOW_TRACKING_URI": settings.tracking_uri,
                "MLP_MLFLOW_ARTIFACT_ROOT": settings.artifact_root,
                "MLP_ROUTING_POLL_S": str(ROUTING_POLL_S),
                "MLP_PREDLOG_FLUSH_S": "0.2",
            }
        )
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 90.0) -> ScoringProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlp_orchestration.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlp serve exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlp serve not ready in {timeout_s}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
