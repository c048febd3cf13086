"""Approvals record the OS user and MLP_ACTOR, and reject the starter's OS user.

``getpass.getuser`` reads LOGNAME first, so setting it runs a command as that OS user name.
"""

from __future__ import annotations

import pytest

from mlp_orchestration.cli import main
from mlp_orchestration.errors import ApprovalError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.approval import record_approval
from mlp_orchestration.rollout.identity import EnvironmentIdentity
from mlp_orchestration.rollout.state import active_rollout
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import get_engine

from .conftest import MODEL


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def started(settings, registered, capsys, monkeypatch) -> RoutingStore:
    """Champion 1 at routing v1, then version 2 put in shadow by alice as OS user alice-os."""
    monkeypatch.delenv("MLP_ACTOR", raising=False)
    store = RoutingStore(get_engine(settings.warehouse_url))
    store.write(
        MODEL,
        RoutingTarget(champion_version="1"),
        expected_version=0,
        stage=RoutingStage.INITIAL,
        actor="lifecycle",
        reason="first champion",
    )
    monkeypatch.setenv("LOGNAME", "alice-os")
    code, out, err = run(capsys, "rollout", "start", MODEL, "--version", "2", "--by", "alice")
    assert code == 0, err
    assert "version 2 in shadow at routing v2" in out
    return store


def test_start_records_os_user(started):
    config = started.current(MODEL)
    assert config.stage == RoutingStage.SHADOW
    assert config.evidence["started_by_identity"] == {"os_user": "alice-os", "mlp_actor": None}


def test_approval_from_starter_os_user_rejected(started, capsys, monkeypatch):
    code, _, err = run(capsys, "routing", "approve", MODEL, "--by", "bob")
    assert code == 2
    assert "was started by 'alice' as OS user 'alice-os'" in err
    assert "approver 'bob' runs as the same OS user" in err
    assert events.list_events(started.engine, MODEL, decision=events.APPROVED) == []

    monkeypatch.setenv("LOGNAME", "bob-os")
    monkeypatch.setenv("MLP_ACTOR", "bob@risk")
    code, out, err = run(capsys, "routing", "approve", MODEL, "--by", "bob", "--note", "ok")
    assert code == 0, err
    assert "approved by bob (OS user bob-os, MLP_ACTOR bob@risk; rollout started by alice" in out
    recorded = events.list_events(started.engine, MODEL, decision=events.APPROVED)
    assert len(recorded) == 1
    assert recorded[0].actor == "bob"
    assert recorded[0].routing_version == 2
    assert recorded[0].metrics["approver_identity"] == {
        "os_user": "bob-os",
        "mlp_actor": "bob@risk",
    }
    assert recorded[0].metrics["started_by_identity"]["os_user"] == "alice-os"
    assert recorded[0].metrics["rollout_started_version"] == 2
    assert recorded[0].metrics["note"] == "ok"


def test_approval_with_unknown_os_user_rejected(started):
    state = active_rollout(started.history(MODEL))
    with pytest.raises(ApprovalError, match="the OS user running this approval is unknown"):
        record_approval(
            started.engine,
            state,
            approver="bob",
            identity=EnvironmentIdentity(os_user=None, mlp_actor=None),
        )
