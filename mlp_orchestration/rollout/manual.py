"""A person's rollback of the routing config to an earlier version (``mlp routing rollback``)."""

from __future__ import annotations

import logging

from mlp_orchestration import registry
from mlp_orchestration.routing.config import RoutingConfig
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import get_engine

logger = logging.getLogger(__name__)


def rollback_routing(
    settings: Settings,
    model: str,
    *,
    to_version: int,
    expected_version: int | None,
    actor: str,
    reason: str,
) -> RoutingConfig:
    """Append a config whose traffic equals ``to_version``; history is never rewritten.

    The MLflow ``champion`` alias follows the restored champion, so the registry and the
    routing config keep naming the same version.

    Args:
        expected_version: the version the caller based the rollback on (default: the latest
            version read now); the write fails with a conflict if another writer came first.

    Raises:
        NotFoundError: the model or ``to_version`` does not exist.
        RoutingConflictError: the latest version is no longer ``expected_version``.
    """
    store = RoutingStore(get_engine(settings.warehouse_url), redis_url=settings.redis_url)
    if expected_version is None:
        expected_version = store.require_current(model).version
    store.get(model, to_version)
    config = store.rollback(
        model,
        to_version=to_version,
        expected_version=expected_version,
        actor=actor,
        reason=reason,
    )
    client = registry.configure(settings)
    if registry.alias_version(client, model, registry.CHAMPION) not in (
        None,
        config.champion_version,
    ):
        registry.set_alias(client, model, registry.CHAMPION, config.champion_version)
    return config
