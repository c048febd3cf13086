"""Routing config: which model versions serve, with what share, as an audited history."""

from mlp_orchestration.routing.config import RoutingConfig, RoutingStage
from mlp_orchestration.routing.store import RoutingStore

__all__ = ["RoutingConfig", "RoutingStage", "RoutingStore"]
