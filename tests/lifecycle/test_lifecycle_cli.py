"""`mlp status`, `mlp demo` and `mlp ui` through the real command line, and replay options."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mlp_orchestration.cli import main
from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.replay import TrafficReplay


def test_status_fresh_home_is_consistent(capsys):
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["models"]["fraud"]
    assert status["champion_version"] is None
    assert status["routing_version"] is None
    assert status["consistent"] is True

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "fraud: champion none, challenger none, routing config none" in out
    assert "WARNING" not in out


@pytest.mark.parametrize("rate", ["nan", "inf", "-inf", "NaN"])
def test_demo_rejects_non_finite_rate(rate, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["demo", f"--rate={rate}"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert f"argument --rate: {rate!r} is not a finite number" in error


@pytest.mark.parametrize(
    ("rate", "label_delay_s", "expected"),
    [
        (float("nan"), 0.0, r"replay rate nan must be above 0 transactions/s and finite"),
        (float("inf"), 0.0, r"replay rate inf must be above 0 transactions/s and finite"),
        (10.0, float("nan"), r"label delay nan s must not be negative and must be finite"),
        (10.0, float("inf"), r"label delay inf s must not be negative and must be finite"),
        (1e-300, 0.0, r"replay rate 1e-300 transactions/s is below the lowest supported rate"),
        (10.0, 1e300, r"label delay 1e\+300 s is longer than the longest supported delay"),
    ],
)
def test_replay_rejects_non_finite_numbers(settings, fraud_spec, rate, label_delay_s, expected):
    start = datetime(2013, 9, 2, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match=expected):
        TrafficReplay(
            settings,
            fraud_spec,
            start=start,
            end=start.replace(hour=1),
            rate=rate,
            label_delay_s=label_delay_s,
        )


def test_non_database_file_named_without_traceback(monkeypatch, tmp_path, capsys):
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("some notes, not a SQLite database\n")
    monkeypatch.setenv("MLP_DATABASE_URL", f"sqlite:///{not_a_database}")

    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert f"the warehouse at sqlite:///{not_a_database} is not a usable database" in error
    assert "file is not a database" in error
    assert "Traceback" not in error


def test_foreign_schema_named_without_sql(monkeypatch, tmp_path, capsys):
    """A warehouse whose routing_config table has another schema fails on its first read."""
    import sqlite3

    warehouse = tmp_path / "foreign.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE routing_config (model TEXT, something_else TEXT)")
    monkeypatch.setenv("MLP_DATABASE_URL", f"sqlite:///{warehouse}")

    assert main(["routing", "show", "fraud"]) == 2
    error = capsys.readouterr().err
    assert "error: OperationalError: no such column" in error
    assert "name this project's stores" in error
    assert "SELECT" not in error
    assert "Traceback" not in error


def _free_port_above_20000() -> int:
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port > 20000:
            return port
    pytest.fail("found no free loopback port above 20000 in 50 tries")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _ignore_sigint() -> None:
    # What a shell does for a background job (`mlp ui &`): SIGINT ignored, kept across exec.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_ui_in_background_stops_on_sigterm(isolated_home: Path, tmp_path: Path):
    port = _free_port_above_20000()
    mlp = Path(sys.executable).with_name("mlp")
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [str(mlp), "ui", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "ui.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Dagster UI did not answer within 120 s"
            time.sleep(1)

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _group_alive(process.pid), "processes of `mlp ui` outlived SIGTERM"
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
