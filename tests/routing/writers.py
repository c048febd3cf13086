"""A routing writer for the concurrency tests; module level so spawned processes can import it."""

from __future__ import annotations

from mlp_orchestration.errors import RoutingConflictError
from mlp_orchestration.routing.config import RoutingStage
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import get_engine

MODEL = "fraud"


def write_attempts(url: str, writer: str, attempts: int) -> tuple[list[tuple[int, str]], int]:
    """Try ``attempts`` compare-and-set writes; return (won versions with reasons, conflicts)."""
    store = RoutingStore(get_engine(url))
    won: list[tuple[int, str]] = []
    conflicts = 0
    for attempt in range(attempts):
        current = store.require_current(MODEL)
        reason = f"{writer} attempt {attempt}"
        share = 0.0 if current.canary_share else 0.05
        try:
            config = store.update(
                MODEL,
                expected_version=current.version,
                stage=RoutingStage.MANUAL,
                actor=writer,
                reason=reason,
                canary_version=None if share == 0 else "2",
                canary_share=share,
            )
        except RoutingConflictError:
            conflicts += 1
            continue
        won.append((config.version, reason))
    return won, conflicts
