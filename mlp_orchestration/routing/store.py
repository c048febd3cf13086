"""Append-only, versioned routing history in SQL, with compare-and-set writes.

Readers poll ``latest_versions`` (one cheap query for every model); when Redis is configured,
every write is also published on ``REDIS_CHANNEL`` so readers can refresh at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import ConfigurationError, NotFoundError, RoutingConflictError
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage, RoutingTarget
from mlp_orchestration.warehouse import routing_config, utcnow

logger = logging.getLogger(__name__)

REDIS_CHANNEL = "mlp:routing"


def _row_to_config(row: sa.Row) -> RoutingConfig:
    return RoutingConfig(
        model=row.model,
        version=row.version,
        champion_version=row.champion_version,
        canary_version=row.canary_version,
        canary_share=row.canary_share,
        shadow_versions=tuple(row.shadow_versions or ()),
        stage=RoutingStage(row.stage),
        actor=row.actor,
        reason=row.reason,
        evidence=row.evidence or {},
        created_at=row.created_at,
    )


class RoutingStore:
    """Reads and writes routing configs in the warehouse."""

    def __init__(self, engine: Engine, *, redis_url: str | None = None) -> None:
        self.engine = engine
        self.redis_url = redis_url
        self._redis: Any = None

    def current(self, model: str) -> RoutingConfig | None:
        """Return the latest config of a model, or None when it has never been routed."""
        query = (
            sa.select(routing_config)
            .where(routing_config.c.model == model)
            .order_by(routing_config.c.version.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _row_to_config(row) if row else None

    def require_current(self, model: str) -> RoutingConfig:
        config = self.current(model)
        if config is None:
            raise NotFoundError(
                f"model {model!r} has no routing config yet; run the lifecycle "
                "('mlp demo' or the model's Dagster job) to promote a first champion"
            )
        return config

    def get(self, model: str, version: int) -> RoutingConfig:
        query = sa.select(routing_config).where(
            routing_config.c.model == model, routing_config.c.version == version
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            latest = self.current(model)
            span = f"1 to {latest.version}" if latest else "none exist"
            raise NotFoundError(
                f"routing config version {version} of model {model!r} does not exist "
                f"(versions: {span})"
            )
        return _row_to_config(row)

    def history(self, model: str) -> list[RoutingConfig]:
        """Return every config version of a model, oldest first."""
        query = (
            sa.select(routing_config)
            .where(routing_config.c.model == model)
            .order_by(routing_config.c.version)
        )
        with self.engine.connect() as conn:
            return [_row_to_config(row) for row in conn.execute(query)]

    def latest_versions(self) -> dict[str, int]:
        """Return the latest config version of every routed model."""
        query = sa.select(routing_config.c.model, sa.func.max(routing_config.c.version)).group_by(
            routing_config.c.model
        )
        with self.engine.connect() as conn:
            return {model: version for model, version in conn.execute(query)}

    def write(
        self,
        model: str,
        target: RoutingTarget,
        *,
        expected_version: int,
        stage: RoutingStage,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
    ) -> RoutingConfig:
        """Append a new config version if the latest is still ``expected_version``.

        Args:
            expected_version: the version the writer based its change on; 0 for the first.

        Raises:
            RoutingConflictError: another writer appended a version since.
        """
        if not actor.strip():
            raise ConfigurationError("a routing change needs an actor; set MLP_ACTOR or --by")
        if not reason.strip():
            raise ConfigurationError("a routing change needs a reason")
        evidence = evidence or {}
        _check_json(evidence)
        new_version = expected_version + 1
        row = {
            "model": model,
            "version": new_version,
            "champion_version": target.champion_version,
            "canary_version": target.canary_version,
            "canary_share": target.canary_share,
            "shadow_versions": list(target.shadow_versions),
            "stage": stage.value,
            "actor": actor,
            "reason": reason,
            "evidence": evidence,
            "created_at": utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                latest = conn.execute(
                    sa.select(sa.func.max(routing_config.c.version)).where(
                        routing_config.c.model == model
                    )
                ).scalar()
                if (latest or 0) != expected_version:
                    raise _conflict(model, expected_version, latest or 0)
                conn.execute(routing_config.insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise _conflict(model, expected_version, None) from exc
        except sa.exc.OperationalError as exc:
            # SQLite reports a write lock held too long as OperationalError; the writer simply
            # lost the race and may retry from a fresh read.
            if "locked" in str(exc.orig):
                raise _conflict(model, expected_version, None) from exc
            raise
        config = RoutingConfig(**{**row, "shadow_versions": tuple(row["shadow_versions"])})
        logger.info(
            "routing %s v%d written by %s (%s): champion=%s canary=%s@%.2f shadows=%s",
            model,
            new_version,
            actor,
            stage.value,
            config.champion_version,
            config.canary_version,
            config.canary_share,
            list(config.shadow_versions),
        )
        self._publish(model, new_version)
        return config

    def update(
        self,
        model: str,
        *,
        expected_version: int,
        stage: RoutingStage,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
        **changes: Any,
    ) -> RoutingConfig:
        """Append a version equal to ``expected_version`` with ``changes`` applied."""
        base = self.get(model, expected_version)
        try:
            target = RoutingTarget(**{**base.target().model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigurationError(f"invalid routing change for {model!r}: {exc}") from None
        return self.write(
            model,
            target,
            expected_version=expected_version,
            stage=stage,
            actor=actor,
            reason=reason,
            evidence=evidence,
        )

    def rollback(
        self,
        model: str,
        *,
        to_version: int,
        expected_version: int,
        actor: str,
        reason: str,
    ) -> RoutingConfig:
        """Append a version whose traffic equals an earlier one; history is never rewritten."""
        earlier = self.get(model, to_version)
        return self.write(
            model,
            earlier.target(),
            expected_version=expected_version,
            stage=RoutingStage.ROLLBACK,
            actor=actor,
            reason=reason,
            evidence={"rolled_back_to": to_version, "rolled_back_from": expected_version},
        )

    def _publish(self, model: str, version: int) -> None:
        if not self.redis_url:
            return
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._redis.publish(REDIS_CHANNEL, json.dumps({"model": model, "version": version}))
        except Exception as exc:  # noqa: BLE001 - any Redis failure only delays readers
            logger.warning(
                "routing %s v%d stored but not published to Redis (%s); readers will see it "
                "at their next poll",
                model,
                version,
                exc,
            )


def _conflict(model: str, expected: int, latest: int | None) -> RoutingConflictError:
    found = f"the latest is now v{latest}" if latest is not None else "another writer won"
    return RoutingConflictError(
        f"routing config of {model!r} changed since v{expected} ({found}); "
        "read the current config and apply the change again"
    )


def _check_json(evidence: dict[str, Any]) -> None:
    try:
        json.dumps(evidence, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"routing evidence must be plain JSON: {exc}") from exc
