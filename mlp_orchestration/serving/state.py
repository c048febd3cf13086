"""The serving state: one immutable object that request handlers read without locks.

The routing follower builds a complete new ``ServingState`` (every routed version loaded and
warmed) and then replaces the reference in one assignment, so a request reads either the old
state or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.routing.config import RoutingConfig
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.serving.canary import CANARY, CHAMPION, SHADOW, canary_salt
from mlp_orchestration.serving.errors import ModelUnavailableError

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class LoadedVersion:
    """A registered model version loaded from its native file and warmed."""

    model: str
    version: str
    native: NativeModel
    decision_threshold: float | None
    loaded_at: datetime
    path: str


@dataclass(frozen=True)
class LoadError:
    """The last failed attempt to apply a model's routing config."""

    routing_version: int
    message: str
    at: datetime
    failures: int


@dataclass(frozen=True)
class ModelRoute:
    """One model's routing config with every version it names loaded."""

    config: RoutingConfig
    champion: LoadedVersion
    canary: LoadedVersion | None
    shadows: tuple[LoadedVersion, ...]
    canary_salt: bytes
    canary_share: float

    @classmethod
    def build(cls, config: RoutingConfig, loaded: Mapping[str, LoadedVersion]) -> ModelRoute:
        """Assemble a route from a config and its loaded versions (keyed by version)."""
        canary = loaded[config.canary_version] if config.canary_version else None
        return cls(
            config=config,
            champion=loaded[config.champion_version],
            canary=canary,
            shadows=tuple(loaded[v] for v in config.shadow_versions),
            canary_salt=canary_salt(config.model, config.canary_version or ""),
            canary_share=config.canary_share if canary is not None else 0.0,
        )

    def roles(self) -> list[tuple[str, LoadedVersion]]:
        """List (arm, version) for every loaded version of the route."""
        roles = [(CHAMPION, self.champion)]
        if self.canary is not None:
            roles.append((CANARY, self.canary))
        roles.extend((SHADOW, shadow) for shadow in self.shadows)
        return roles


@dataclass(frozen=True)
class ServingState:
    """Everything a request needs: the routes, the routed models and the last load errors.

    ``routed`` contains every model that has a routing config in the store, loaded or not, so a
    model whose first config failed to load gets 503 instead of 404.
    """

    routes: Mapping[str, ModelRoute] = field(default_factory=lambda: _EMPTY)
    routed: frozenset[str] = frozenset()
    errors: Mapping[str, LoadError] = field(default_factory=lambda: _EMPTY)
    store_read: bool = False

    def route(self, model: str) -> ModelRoute:
        """Return the route of a model.

        Raises:
            NotFoundError: the model has no routing config.
            ModelUnavailableError: the model is routed but no config of it has loaded yet.
        """
        route = self.routes.get(model)
        if route is not None:
            return route
        if model in self.routed:
            error = self.errors.get(model)
            detail = f": {error.message}" if error else "; retry in a few seconds"
            raise ModelUnavailableError(f"model {model!r} is routed but not loaded yet{detail}")
        raise self.not_found(model)

    def ready(self) -> bool:
        """Return whether the store was read and every routed model has a loaded route."""
        return self.store_read and all(model in self.routes for model in self.routed)

    def not_found(self, model: str) -> NotFoundError:
        """Return the error for a model without a routing config, listing the served ones."""
        served = ", ".join(sorted(self.routed)) or "none yet"
        name = model if len(model) <= 64 else model[:64] + "..."
        return NotFoundError(
            f"model {name!r} is not served here (served models: {served}); "
            "check the model name or route the model first"
        )
