"""What a rollout step reads and writes: settings, spec, warehouse, routing store, registry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from mlp_orchestration import registry
from mlp_orchestration.errors import NotFoundError
from mlp_orchestration.rollout.aliases import check_registry
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import Settings
from mlp_orchestration.spec import ModelSpec
from mlp_orchestration.warehouse import get_engine

DECISION_THRESHOLD_TAG = "decision_threshold"


@dataclass
class RolloutContext:
    """The stores of one model's rollout; the MLflow client is created on first use."""

    settings: Settings
    spec: ModelSpec
    engine: Engine
    store: RoutingStore
    _client: MlflowClient | None = field(default=None, repr=False)
    _thresholds: dict[str, float] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, settings: Settings, spec: ModelSpec) -> RolloutContext:
        engine = get_engine(settings.warehouse_url)
        return cls(settings, spec, engine, RoutingStore(engine, redis_url=settings.redis_url))

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = registry.configure(self.settings)
        return self._client

    def checked_client(self) -> MlflowClient:
        """Return the client after checking that the registry responds and contains the model.

        Raises:
            RegistryUnavailableError: the registry did not respond.
            NotFoundError: the registry does not hold the model.
        """
        self._client = check_registry(self.settings, self.model, self._client)
        return self._client

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(
            registry.get_version(self.client, self.spec.registered_model_name, version).tags
        )

    def decision_threshold(self, version: str) -> float:
        """Return a version's ``decision_threshold`` tag, which the lifecycle sets at training.

        Raises:
            NotFoundError: the version or its tag is missing, or the tag is not a number.
        """
        if version in self._thresholds:
            return self._thresholds[version]
        raw = self.version_tags(version).get(DECISION_THRESHOLD_TAG)
        try:
            value = float(raw) if raw is not None else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise NotFoundError(
                f"{self.model} version {version} has no numeric {DECISION_THRESHOLD_TAG!r} tag "
                f"(found {raw!r}); the lifecycle sets it when it trains a version. Set it with "
                "MlflowClient.set_model_version_tag before rolling the version out."
            )
        self._thresholds[version] = value
        return value
