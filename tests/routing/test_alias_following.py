"""Aliases follow the latest routing config even when routing moves during the alias move."""

from __future__ import annotations

import threading

from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.rollout.aliases import follow_routing
from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import get_engine

from .conftest import MODEL


def _write(store: RoutingStore, champion: str, expected: int, actor: str):
    return store.write(
        MODEL,
        RoutingTarget(champion_version=champion),
        expected_version=expected,
        stage=RoutingStage.ROLLBACK,
        actor=actor,
        reason=f"champion {champion}",
    )


def test_follow_moves_to_newer_version(settings, registered):
    store = RoutingStore(get_engine(settings.warehouse_url))
    _write(store, "1", 0, "lifecycle")
    stale = _write(store, "2", 1, "alice")
    _write(store, "3", 2, "bob")

    changes = follow_routing(settings, registered, stale, store)

    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "3"
    assert changes == ["champion -> 2", "champion -> 3"]


def test_without_store_follows_written_version(settings, registered):
    store = RoutingStore(get_engine(settings.warehouse_url))
    _write(store, "1", 0, "lifecycle")
    stale = _write(store, "2", 1, "alice")
    _write(store, "3", 2, "bob")

    follow_routing(settings, registered, stale)

    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "2"


class _SlowAliasClient(MlflowClient):
    """A real client whose first alias move waits until ``release`` is set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        super().set_registered_model_alias(name, alias, version)


def test_overlapping_writers_leave_latest_champion(settings, registered):
    """Writer A moves aliases slowly; writer B writes and follows a newer version meanwhile."""
    store = RoutingStore(get_engine(settings.warehouse_url))
    _write(store, "1", 0, "lifecycle")
    slow = _SlowAliasClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    written_a = _write(store, "2", 1, "alice")
    failures: list[BaseException] = []

    def writer_a() -> None:
        try:
            follow_routing(settings, slow, written_a, store)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=writer_a)
    thread.start()
    assert slow.entered.wait(30)
    written_b = _write(store, "3", written_a.version, "bob")
    follow_routing(settings, registered, written_b, store)
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "3"
    slow.release.set()
    thread.join(30)

    assert not failures
    assert registry.alias_version(registered, MODEL, registry.CHAMPION) == "3"
    assert store.current(MODEL).champion_version == "3"
