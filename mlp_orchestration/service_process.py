"""Running `mlp serve` as a child process on loopback, for the demo and integration tests."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mlp_orchestration.errors import ErrorCategory, MlpError

logger = logging.getLogger(__name__)


class ServiceStartError(MlpError):
    """The scoring service did not become ready."""

    category = ErrorCategory.UNAVAILABLE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScoringServiceProcess:
    """`mlp serve` on 127.0.0.1 with this process's environment; stops with SIGTERM."""

    def __init__(
        self,
        *,
        port: int | None = None,
        workers: int = 1,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.workers = workers
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_timeout_s: float = 90.0) -> ScoringServiceProcess:
        command = [
            sys.executable,
            "-m",
            "mlp_orchestration.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        self._wait_ready(ready_timeout_s)
        logger.info("scoring service ready at %s (pid %d)", self.url, self.process.pid)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceStartError(
                    f"mlp serve exited with code {self.process.returncode} before it was ready; "
                    f"see {self.log_path or 'its output'}"
                )
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        self.stop()
        raise ServiceStartError(
            f"the scoring service at {self.url} was not ready after {timeout_s:.0f} s ({last}); "
            f"see {self.log_path or 'its output'}"
        )

    def stop(self, *, timeout_s: float = 40.0) -> int | None:
        """Stop gracefully, so the prediction log is flushed; kill after ``timeout_s``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "scoring service pid %d did not stop in %.0f s; killing it",
                    self.process.pid,
                    timeout_s,
                )
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -SIGTERM is a clean stop.
        code = self.process.returncode
        return 0 if code == -signal.SIGTERM else code

    def __enter__(self) -> ScoringServiceProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
