"""The Dagster resource through which assets, checks and sensors reach the platform's stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from mlp_orchestration import registry
from mlp_orchestration.routing import RoutingStore
from mlp_orchestration.settings import Settings, get_settings
from mlp_orchestration.spec import ModelSpec, get_spec, load_specs
from mlp_orchestration.warehouse import get_engine

if TYPE_CHECKING:
    from mlp_orchestration.alerts import AlertSink


class MlpResource(dg.ConfigurableResource):
    """Settings, warehouse, MLflow registry, routing store and alerts, read from the environment."""

    def settings(self) -> Settings:
        return get_settings()

    def engine(self) -> Engine:
        return get_engine(self.settings().warehouse_url)

    def mlflow(self) -> MlflowClient:
        return registry.configure(self.settings())

    def routing(self) -> RoutingStore:
        settings = self.settings()
        return RoutingStore(self.engine(), redis_url=settings.redis_url)

    def spec(self, model: str) -> ModelSpec:
        return get_spec(load_specs(self.settings().specs_dir), model)

    def alerts(self) -> AlertSink:
        from mlp_orchestration.alerts import build_alert_sink

        return build_alert_sink(self.settings(), self.engine())
