"""``mlp routing``: show, history, diff, rollback and approve through the real command line."""

from __future__ import annotations

import json

import pytest

from mlp_orchestration.cli import main
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import get_engine

MODEL = "fraud"


@pytest.fixture
def store(settings) -> RoutingStore:
    """Routing v1 (champion 1), v2 (version 2 in shadow, by alice), v3 (canary 5%)."""
    store = RoutingStore(get_engine(settings.warehouse_url))
    store.write(
        MODEL,
        RoutingTarget(champion_version="1"),
        expected_version=0,
        stage=RoutingStage.INITIAL,
        actor="lifecycle",
        reason="first champion",
        evidence={"gate_report": {"gate_verdict": "passed"}},
    )
    store.update(
        MODEL,
        expected_version=1,
        stage=RoutingStage.SHADOW,
        actor="alice",
        reason="shadow of version 2",
        evidence={"candidate_version": "2"},
        shadow_versions=("2",),
    )
    store.update(
        MODEL,
        expected_version=2,
        stage=RoutingStage.CANARY,
        actor="sensor",
        reason="shadow gate passed",
        evidence={"candidate_version": "2"},
        shadow_versions=(),
        canary_version="2",
        canary_share=0.05,
    )
    return store


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_json_prints_current_config(store, capsys):
    code, out, _ = run(capsys, "routing", "show", MODEL, "--json")
    config = json.loads(out)
    assert code == 0
    assert config["version"] == 3
    assert config["stage"] == "canary"
    assert config["canary_version"] == "2"
    assert config["canary_share"] == 0.05


def test_show_unknown_model_fails_with_message(settings, capsys):
    code, _, err = run(capsys, "routing", "show", "nosuch")
    assert code == 2
    assert "model 'nosuch' has no routing config yet" in err


def test_history_json_lists_who_when_why_evidence(store, capsys):
    code, out, _ = run(capsys, "routing", "history", MODEL, "--json")
    history = json.loads(out)
    assert code == 0
    assert [c["version"] for c in history] == [1, 2, 3]
    assert [c["actor"] for c in history] == ["lifecycle", "alice", "sensor"]
    assert [c["stage"] for c in history] == ["initial", "shadow", "canary"]
    assert all(c["created_at"] and c["reason"] for c in history)
    assert history[0]["evidence"]["gate_report"]["gate_verdict"] == "passed"


def test_history_text_names_each_version(store, capsys):
    code, out, _ = run(capsys, "routing", "history", MODEL)
    assert code == 0
    assert "v2" in out
    assert "shadow  by alice" in out
    assert "reason: shadow gate passed" in out


def test_diff_json_lists_changed_fields(store, capsys):
    code, out, _ = run(capsys, "routing", "diff", MODEL, "1", "3", "--json")
    changes = json.loads(out)["changes"]
    assert code == 0
    assert changes["canary_version"] == {"from": None, "to": "2"}
    assert changes["canary_share"] == {"from": 0.0, "to": 0.05}
    assert "champion_version" not in changes


def test_diff_unknown_version_fails(store, capsys):
    code, _, err = run(capsys, "routing", "diff", MODEL, "1", "9")
    assert code == 2
    assert "version 9 of model 'fraud' does not exist (versions: 1 to 3)" in err


def test_rollback_appends_version_equal_to_earlier(store, capsys):
    code, out, _ = run(
        capsys,
        "routing",
        "rollback",
        MODEL,
        "--to",
        "1",
        "--by",
        "bob",
        "--reason",
        "canary errors",
    )
    history = store.history(MODEL)
    assert code == 0
    assert "wrote v4, equal in traffic to v1" in out
    assert [c.version for c in history] == [1, 2, 3, 4]
    assert history[3].target() == history[0].target()
    assert history[3].stage == RoutingStage.ROLLBACK
    assert history[3].actor == "bob"
    assert history[3].evidence == {"rolled_back_to": 1, "rolled_back_from": 3}
    assert history[2].canary_version == "2"  # history is never rewritten


def test_rollback_with_stale_expected_version_is_a_conflict(store, capsys):
    code, _, err = run(
        capsys,
        "routing",
        "rollback",
        MODEL,
        "--to",
        "1",
        "--by",
        "bob",
        "--reason",
        "late",
        "--expected-version",
        "2",
    )
    assert code == 2
    assert "changed since v2 (the latest is now v3)" in err
    assert store.current(MODEL).version == 3


def test_approve_by_starter_rejected_then_other_person_accepted(store, capsys):
    code, _, err = run(capsys, "routing", "approve", MODEL, "--by", "alice")
    assert code == 2
    assert "approver 'alice' started the rollout" in err
    code, out, _ = run(capsys, "routing", "approve", MODEL, "--by", "bob")
    assert code == 0
    assert "approved by bob (rollout started by alice" in out
    code, _, err = run(capsys, "routing", "approve", MODEL, "--by", "carol")
    assert code == 2
    assert "already approved by bob" in err
