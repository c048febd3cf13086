"""``mlp routing rollback`` and ``reconcile`` when the MLflow registry is down or remote.

"Down" is a loopback port with nothing listening, so the failure is a real refused connection.
Remote registries are a real ``mlflow server`` on loopback and a PostgreSQL-backed store.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.cli import main
from mlp_orchestration.rollout.aliases import RegistryUnavailableError, follow_routing
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import get_settings
from mlp_orchestration.warehouse import get_engine

from .conftest import MODEL, register_versions

DOWN_HTTP = "http://127.0.0.1:9"
DOWN_SQL = "postgresql+psycopg2://postgres@127.0.0.1:1/mlflow"
ROLLBACK = ["routing", "rollback", MODEL, "--to", "1", "--by", "tester", "--reason", "x"]


@pytest.fixture
def store(settings) -> RoutingStore:
    """Routing v1 (champion 1), v2 (version 2 in shadow), v3 (canary 2 at 5%)."""
    store = RoutingStore(get_engine(settings.warehouse_url))
    store.write(
        MODEL,
        RoutingTarget(champion_version="1"),
        expected_version=0,
        stage=RoutingStage.INITIAL,
        actor="lifecycle",
        reason="first champion",
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
        shadow_versions=(),
        canary_version="2",
        canary_share=0.05,
    )
    return store


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("uri", [DOWN_HTTP, DOWN_SQL], ids=["http", "postgresql"])
def test_rollback_with_registry_down_changes_nothing(store, capsys, monkeypatch, uri):
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", uri)
    code, out, err = run(capsys, *ROLLBACK)
    assert code == 2
    assert out == ""
    assert "rollback of fraud not done: the MLflow registry at " in err
    assert "did not respond" in err
    assert "Nothing was changed: routing stays at v3 and no alias moved" in err
    assert "--routing-only" in err
    assert "Traceback" not in err
    assert store.current(MODEL).version == 3


def test_rollback_routing_only_then_reconcile(store, registered, capsys, monkeypatch):
    registry.set_alias(registered, MODEL, registry.CHALLENGER, "2")
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", DOWN_HTTP)
    code, out, err = run(capsys, *ROLLBACK, "--routing-only")
    written = store.current(MODEL)
    assert code == 0, err
    assert "MLflow aliases not checked or moved; run 'mlp routing reconcile fraud'" in out
    assert written.version == 4
    assert written.canary_version is None
    assert written.evidence["candidate_version"] == "2"
    assert "aliases_pending" in written.evidence

    monkeypatch.delenv("MLP_MLFLOW_TRACKING_URI")
    assert registry.alias_version(registered, MODEL, registry.CHALLENGER) == "2"
    code, out, err = run(capsys, "routing", "reconcile", MODEL)
    assert code == 0, err
    assert "to match routing v4: challenger removed (was 2)" in out
    assert registry.alias_version(registered, MODEL, registry.CHALLENGER) is None
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "1"


def test_reconcile_with_registry_down_fails_cleanly(store, capsys, monkeypatch):
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", DOWN_HTTP)
    code, _, err = run(capsys, "routing", "reconcile", MODEL)
    assert code == 2
    assert "the MLflow registry at http://127.0.0.1:9 did not respond" in err
    assert "Traceback" not in err


def test_follow_routing_failure_names_written_version(store, monkeypatch):
    # A registry failing after the routing write: no retries, so the refusal surfaces at once.
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", DOWN_HTTP)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = get_settings()
    written = store.current(MODEL)
    with pytest.raises(RegistryUnavailableError, match="routing v3 of fraud was written") as info:
        follow_routing(settings, registry.configure(settings), written)
    message = str(info.value)
    assert "failed while moving the aliases" in message
    assert "Run 'mlp routing reconcile fraud' once the registry responds" in message
    assert info.value.written == written


def test_rollback_through_http_registry_moves_aliases(store, capsys, monkeypatch, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    register_versions(client, 2)
    registry.set_alias(client, MODEL, registry.CHAMPION, "2")
    registry.set_alias(client, MODEL, registry.CHALLENGER, "2")
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", mlflow_server)
    try:
        code, out, err = run(capsys, *ROLLBACK)
        assert code == 0, err
        assert "wrote v4, equal in traffic to v1" in out
        assert registry.alias_version(client, MODEL, registry.CHAMPION) == "1"
        assert registry.alias_version(client, MODEL, registry.CHALLENGER) is None
    finally:
        client.delete_registered_model(MODEL)


def test_rollback_through_postgres_registry_moves_aliases(store, capsys, monkeypatch, postgres_url):
    client = MlflowClient(tracking_uri=postgres_url, registry_uri=postgres_url)
    register_versions(client, 2)
    registry.set_alias(client, MODEL, registry.CHALLENGER, "2")
    monkeypatch.setenv("MLP_MLFLOW_TRACKING_URI", postgres_url)
    code, out, err = run(capsys, *ROLLBACK)
    assert code == 0, err
    assert "rejected version 2" in out
    assert registry.alias_version(client, MODEL, registry.CHAMPION) == "1"
    assert registry.alias_version(client, MODEL, registry.CHALLENGER) is None
