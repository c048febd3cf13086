"""``mlp routing``: show, history, diff, rollback, reconcile and approve through the real command
line, against the isolated home's SQLite warehouse and MLflow store."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from mlp_orchestration import registry
from mlp_orchestration.cli import main
from mlp_orchestration.rollout import events
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import alert_log, get_engine

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


def test_rollback_during_rollout_rejects_candidate(store, registered, capsys):
    registry.set_alias(registered, MODEL, registry.CHALLENGER, "2")
    code, out, err = run(
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
    assert code == 0, err
    assert "wrote v4, equal in traffic to v1" in out
    assert "rejected version 2, the candidate of the rollout in progress (canary_5)" in out
    assert [c.version for c in history] == [1, 2, 3, 4]
    assert history[3].target() == history[0].target()
    assert history[3].stage == RoutingStage.ROLLBACK
    assert history[3].actor == "bob"
    assert history[3].evidence == {
        "rolled_back_to": 1,
        "rolled_back_from": 3,
        "candidate_version": "2",
        "from_stage": "canary_5",
        "rollout_started_version": 2,
        "rejected_candidate": True,
    }
    assert history[2].canary_version == "2"  # history is never rewritten
    assert registry.alias_version(registered, MODEL, registry.CHALLENGER) is None
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "1"
    recorded = events.list_events(store.engine, MODEL, decision=events.ROLLED_BACK)
    assert len(recorded) == 1
    assert recorded[0].candidate_version == "2"
    assert recorded[0].stage == "canary_5"
    assert recorded[0].actor == "bob"
    assert recorded[0].routing_version == 3
    assert recorded[0].metrics["manual"] is True
    assert recorded[0].metrics["written_routing_version"] == 4
    assert recorded[0].metrics["reason"] == "canary errors"
    with store.engine.connect() as conn:
        alerts = conn.execute(sa.select(alert_log.c.kind, alert_log.c.text)).all()
    assert [kind for kind, _ in alerts] == ["rollback"]
    assert "manual rollback to routing v1" in alerts[0].text
    assert "Rejected candidate" in alerts[0].text


def test_rollback_after_promotion_moves_champion_alias(store, registered, capsys):
    store.update(
        MODEL,
        expected_version=3,
        stage=RoutingStage.PROMOTED,
        actor="sensor",
        reason="promoted 2",
        champion_version="2",
        canary_version=None,
        canary_share=0.0,
    )
    registry.set_alias(registered, MODEL, registry.CHAMPION, "2")
    code, out, err = run(
        capsys, "routing", "rollback", MODEL, "--to", "1", "--by", "bob", "--reason", "bad"
    )
    latest = store.current(MODEL)
    assert code == 0, err
    assert latest.version == 5
    assert latest.champion_version == "1"
    assert latest.evidence == {"rolled_back_to": 1, "rolled_back_from": 4}
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "1"
    assert events.list_events(store.engine, MODEL) == []
    assert "rejected version" not in out


@pytest.mark.parametrize("to_version", ["2", "3"])
def test_rollback_to_canary_or_shadow_config_rejected(store, registered, capsys, to_version):
    code, _, err = run(
        capsys, "routing", "rollback", MODEL, "--to", to_version, "--by", "bob", "--reason", "x"
    )
    assert code == 2
    assert f"routing v{to_version} of fraud routes traffic to" in err
    assert "v1 is the latest earlier one (champion only)" in err
    assert store.current(MODEL).version == 3


def test_rollback_to_unregistered_champion_rejected(store, registered, capsys):
    registered.delete_model_version(MODEL, "1")
    code, _, err = run(
        capsys, "routing", "rollback", MODEL, "--to", "1", "--by", "bob", "--reason", "x"
    )
    assert code == 2
    assert "model 'fraud' has no registered version '1'" in err
    assert store.current(MODEL).version == 3


def _rollback_to_version_of_run(store, registered, capsys, run_id: str):
    """Route v4 to a new version of the run, v5 back to version 1, then roll back to v4."""
    version = registered.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
    for expected, champion in ((3, str(version.version)), (4, "1")):
        store.write(
            MODEL,
            RoutingTarget(champion_version=champion),
            expected_version=expected,
            stage=RoutingStage.ROLLBACK,
            actor="alice",
            reason=f"champion {champion}",
        )
    code, out, err = run(
        capsys, "routing", "rollback", MODEL, "--to", "4", "--by", "bob", "--reason", "x"
    )
    return version.version, code, out, err


def test_rollback_to_missing_model_file_rejected(store, registered, capsys):
    """A version whose artifacts were deleted keeps its registry row; the rollback must not."""
    empty_run = registered.create_run("0").info.run_id
    registered.set_terminated(empty_run)

    version, code, out, err = _rollback_to_version_of_run(store, registered, capsys, empty_run)

    assert code == 2
    assert out == ""
    assert f"fraud version {version} is registered, but its artifacts no longer" in err
    assert "'model.lgb' (found: no files)" in err
    assert "Nothing was changed: routing stays at v5" in err
    assert store.current(MODEL).version == 5
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "1"


def test_rollback_to_damaged_model_file_rejected(store, registered, capsys, tmp_path):
    damaged_run = registered.create_run("0").info.run_id
    damaged = tmp_path / registry.NATIVE_MODEL_FILE
    damaged.write_text("not a LightGBM model\n")
    registered.log_artifact(damaged_run, str(damaged), artifact_path="model")
    registered.set_terminated(damaged_run)

    _, code, out, err = _rollback_to_version_of_run(store, registered, capsys, damaged_run)

    assert code == 2
    assert out == ""
    assert "its model.lgb does not load as a LightGBM model" in err
    assert "Nothing was changed: routing stays at v5" in err
    assert store.current(MODEL).version == 5


def test_reconcile_moves_aliases_to_latest_config(store, registered, capsys):
    registry.set_alias(registered, MODEL, registry.CHAMPION, "3")
    code, out, err = run(capsys, "routing", "reconcile", MODEL)
    assert code == 0, err
    assert "moved the MLflow aliases to match routing v3: champion -> 1, challenger -> 2" in out
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "1"
    assert registry.alias_version(registered, MODEL, registry.CHALLENGER) == "2"

    code, out, _ = run(capsys, "routing", "reconcile", MODEL)
    assert code == 0
    assert "the MLflow aliases already match routing v3" in out


def test_reconcile_without_routing_config_fails(registered, capsys):
    code, _, err = run(capsys, "routing", "reconcile", MODEL)
    assert code == 2
    assert "model 'fraud' has no routing config yet" in err


def test_reconcile_unregistered_model_fails(store, capsys):
    code, _, err = run(capsys, "routing", "reconcile", MODEL)
    assert code == 2
    assert "model 'fraud' is not registered in the MLflow registry" in err


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


def test_approve_by_starter_rejected_then_other_person_accepted(store, capsys, monkeypatch):
    monkeypatch.setenv("MLP_ACTOR", "bob-on-call")
    code, _, err = run(capsys, "routing", "approve", MODEL, "--by", "alice")
    assert code == 2
    assert "approver 'alice' started the rollout" in err
    code, out, _ = run(capsys, "routing", "approve", MODEL, "--by", "bob")
    assert code == 0
    assert "approved by bob (OS user " in out
    assert "MLP_ACTOR bob-on-call; rollout started by alice" in out
    recorded = events.list_events(store.engine, MODEL, decision=events.APPROVED)
    assert len(recorded) == 1
    assert recorded[0].actor == "bob"
    assert recorded[0].metrics["approver_identity"]["mlp_actor"] == "bob-on-call"
    assert recorded[0].metrics["approver_identity"]["os_user"]
    assert recorded[0].metrics["started_by_identity"] is None
    code, _, err = run(capsys, "routing", "approve", MODEL, "--by", "carol")
    assert code == 2
    assert "already approved by bob" in err
