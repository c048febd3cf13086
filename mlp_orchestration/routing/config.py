"""The routing config: the contract between the control plane and the scoring service."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RoutingStage(StrEnum):
    """Why a routing config version exists: the lifecycle step that wrote it."""

    INITIAL = "initial"
    SHADOW = "shadow"
    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ROLLBACK = "rollback"
    MANUAL = "manual"


class RoutingTarget(BaseModel):
    """The part of a routing config that decides traffic; what writers change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    champion_version: str = Field(min_length=1)
    canary_version: str | None = None
    canary_share: float = Field(0.0, ge=0.0, le=1.0)
    shadow_versions: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RoutingTarget:
        if self.canary_share > 0 and self.canary_version is None:
            raise ValueError(
                f"canary_share is {self.canary_share} but no canary_version is set; "
                "name the canary version or set the share to 0"
            )
        if self.canary_version is not None and self.canary_version == self.champion_version:
            raise ValueError(
                f"canary_version {self.canary_version} equals the champion version; "
                "a canary must be a different version"
            )
        if self.champion_version in self.shadow_versions:
            raise ValueError(
                f"champion version {self.champion_version} is also listed as a shadow; "
                "remove it from shadow_versions"
            )
        if len(set(self.shadow_versions)) != len(self.shadow_versions):
            raise ValueError(f"shadow_versions lists a version twice: {self.shadow_versions}")
        return self


class RoutingConfig(RoutingTarget):
    """One version of a model's routing config: who wrote it, when, why, on what evidence."""

    model: str
    version: int = Field(ge=1)
    stage: RoutingStage
    actor: str
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime

    def target(self) -> RoutingTarget:
        return RoutingTarget(
            champion_version=self.champion_version,
            canary_version=self.canary_version,
            canary_share=self.canary_share,
            shadow_versions=self.shadow_versions,
        )

    def served_versions(self) -> list[str]:
        """Every version the scoring service must hold loaded for this config."""
        versions = [self.champion_version]
        if self.canary_version is not None:
            versions.append(self.canary_version)
        versions.extend(v for v in self.shadow_versions if v not in versions)
        return versions
