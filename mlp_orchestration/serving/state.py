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

import numpy as np

from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.routing.config import RoutingConfig
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.serving.canary import CANARY, CHAMPION, SHADOW, canary_salt
from mlp_orchestration.serving.contract import InputContract
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
    # None for versions registered before training recorded contracts, which are not checked.
    contract: InputContract | None = None

    def checked_row(self, features: Mapping[str, Any]) -> np.ndarray:
        """Return a record's feature vector in model order, checked against the input contract.

        Raises:
            FeatureError: naming every missing, unknown or non-numeric feature.
            InputContractError: naming each value outside its range and each disallowed null.
        """
        row = self.native.vectorizer.vector(features)
        if self.contract is not None:
            self.contract.check(row)
        return row


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
    model whose first config failed to load gets 503 instead of 404. ``store_error`` is the
    error of the last read of the routing store, or None when that read succeeded. While it is
    set, the routes read before keep serving. Every other model name gets 503, because the
    service cannot check whether the store routes it.
    """

    routes: Mapping[str, ModelRoute] = field(default_factory=lambda: _EMPTY)
    routed: frozenset[str] = frozenset()
    errors: Mapping[str, LoadError] = field(default_factory=lambda: _EMPTY)
    store_read: bool = False
    store_url: str = ""
    store_error: str | None = None

    def route(self, model: str) -> ModelRoute:
        """Return the route of a model.

        Raises:
            NotFoundError: the store was read and has no routing config for the model.
            ModelUnavailableError: the model is routed but no config of it has loaded yet, or
                the store cannot be read (or has not been read yet).
        """
        route = self.routes.get(model)
        if route is not None:
            return route
        if model in self.routed:
            error = self.errors.get(model)
            detail = f": {error.message}" if error else "; retry in a few seconds"
            raise ModelUnavailableError(f"model {model!r} is routed but not loaded yet{detail}")
        raise self.unknown_model(model)

    def waiting_for(self) -> list[str]:
        """List the routed models that have no loaded route yet."""
        return sorted(model for model in self.routed if model not in self.routes)

    def not_ready_reason(self) -> str | None:
        """Return why the service is not ready, or None when it is.

        Ready means the store was read at least once, routes at least one model, and every
        routed model has a loaded route. A store that fails after a successful read does not
        end readiness, because the routes read before keep serving.
        """
        store = f"the routing store at {self.store_url}"
        if not self.store_read and self.store_error is not None:
            return (
                f"{store} has never been read successfully ({self.store_error}); "
                "check MLP_HOME / MLP_DATABASE_URL and the database"
            )
        if not self.store_read:
            return f"{store} has not been read yet"
        if not self.routed:
            return (
                f"no model is routed in {store}; promote a champion first or check "
                "MLP_HOME / MLP_DATABASE_URL"
            )
        waiting = self.waiting_for()
        if waiting:
            return (
                f"routed models not loaded yet: {', '.join(waiting)}; "
                "GET /v1/models/{model} shows the last load error"
            )
        return None

    def ready(self) -> bool:
        """Return whether the service is ready (see ``not_ready_reason``)."""
        return self.not_ready_reason() is None

    def unknown_model(self, model: str) -> NotFoundError | ModelUnavailableError:
        """Return the error for a model missing from the last successful store read.

        The model is not found (404) only when the last store read succeeded; otherwise the
        service is unavailable (503) because it cannot check the store.
        """
        name = model if len(model) <= 64 else model[:64] + "..."
        store = f"the routing store at {self.store_url}"
        if self.store_error is not None:
            return ModelUnavailableError(
                f"model {name!r} is unavailable: {store} cannot be read ({self.store_error}). "
                "Check MLP_HOME / MLP_DATABASE_URL and the database; the service reads the "
                "store again at every poll"
            )
        if not self.store_read:
            return ModelUnavailableError(
                f"model {name!r} is unavailable: {store} has not been read yet; retry in a few "
                "seconds"
            )
        served = ", ".join(sorted(self.routed)) or "none yet"
        return NotFoundError(
            f"model {name!r} is not served here (served models: {served}); "
            "check the model name or route the model first"
        )
