"""The state of a model's rollout, read from its routing history.

A rollout is the run of SHADOW and CANARY configs for one candidate version at the end of the
history. It starts with the first config of that run, whose actor started the rollout, and ends
with the next config of any other stage (PROMOTED, ROLLED_BACK, ROLLBACK, MANUAL).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlp_orchestration.rollout.identity import EnvironmentIdentity
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage

ACTIVE_STAGES = frozenset({RoutingStage.SHADOW, RoutingStage.CANARY})
# Shares are floats read back from SQL; this tolerance matches a config's share to a stage.
_SHARE_TOLERANCE = 1e-9


def candidate_of(config: RoutingConfig) -> str | None:
    """Return the version a SHADOW or CANARY config is rolling out, or None for other stages."""
    if config.stage == RoutingStage.CANARY and config.canary_version is not None:
        return config.canary_version
    if config.stage == RoutingStage.SHADOW and config.shadow_versions:
        named = config.evidence.get("candidate_version")
        if isinstance(named, str) and named in config.shadow_versions:
            return named
        return config.shadow_versions[0]
    return None


@dataclass(frozen=True)
class RolloutState:
    """An active rollout: its configs, oldest first, and the candidate they roll out."""

    model: str
    candidate_version: str
    configs: tuple[RoutingConfig, ...]

    @property
    def started(self) -> RoutingConfig:
        return self.configs[0]

    @property
    def started_by(self) -> str:
        return self.started.actor

    @property
    def started_identity(self) -> EnvironmentIdentity | None:
        """The starter's OS user and MLP_ACTOR, recorded only by ``mlp rollout start``."""
        return EnvironmentIdentity.from_dict(self.started.evidence.get("started_by_identity"))

    @property
    def current(self) -> RoutingConfig:
        return self.configs[-1]

    @property
    def champion_version(self) -> str:
        return self.current.champion_version

    @property
    def phase(self) -> RoutingStage:
        return self.current.stage

    def shadow_configs(self) -> list[RoutingConfig]:
        return [c for c in self.configs if c.stage == RoutingStage.SHADOW]

    def canary_configs(self) -> list[RoutingConfig]:
        return [c for c in self.configs if c.stage == RoutingStage.CANARY]


def active_rollout(history: list[RoutingConfig]) -> RolloutState | None:
    """Return the rollout in progress at the end of ``history`` (oldest first), if any."""
    if not history or history[-1].stage not in ACTIVE_STAGES:
        return None
    candidate = candidate_of(history[-1])
    if candidate is None:
        return None
    start = len(history) - 1
    while start > 0:
        previous = history[start - 1]
        if previous.stage not in ACTIVE_STAGES or candidate_of(previous) != candidate:
            break
        start -= 1
    return RolloutState(
        model=history[-1].model,
        candidate_version=candidate,
        configs=tuple(history[start:]),
    )


def was_rolled_out(history: list[RoutingConfig], version: str) -> bool:
    """Tell whether any config ever rolled out, promoted or served ``version``."""
    return any(
        candidate_of(config) == version or config.champion_version == version for config in history
    )


def stage_index(stages: list[float], share: float) -> int | None:
    """Return the position of ``share`` in the spec's stages, or None if it is not one."""
    for index, stage in enumerate(stages):
        if abs(stage - share) <= _SHARE_TOLERANCE:
            return index
    return None


def next_stage(stages: list[float], share: float) -> float | None:
    """Return the first stage share above ``share``, or None past the last stage."""
    for stage in stages:
        if stage > share + _SHARE_TOLERANCE:
            return stage
    return None


def stage_label(config: RoutingConfig) -> str:
    """Name of a rollout stage for events and reports, e.g. ``shadow`` or ``canary_25``."""
    if config.stage == RoutingStage.CANARY:
        return f"canary_{round(config.canary_share * 100):d}"
    return config.stage.value
