"""A person's routing changes: ``mlp routing rollback`` and ``mlp routing reconcile``.

A rollback during a rollout rejects its candidate, as an automatic rollback does: the restored
config may not route traffic to it, its ``challenger`` alias is removed, and a ``rolled_back``
rollout event records who did it and why.
"""

from __future__ import annotations

import logging
from typing import Any

from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.alerts import Alert, AlertKind, AlertLogError, Severity, build_alert_sink
from mlp_orchestration.errors import ConfigurationError, RoutingConflictError
from mlp_orchestration.rollout import events
from mlp_orchestration.rollout.aliases import (
    REGISTRY_ERRORS,
    RegistryUnavailableError,
    check_model_file,
    check_registry,
    follow_routing,
    reconcile_aliases,
)
from mlp_orchestration.rollout.state import RolloutState, active_rollout, stage_label
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import Settings, safe_url
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
    routing_only: bool = False,
) -> RoutingConfig:
    """Append a config whose traffic equals ``to_version``; history is never rewritten.

    The MLflow registry is checked before the routing write, and the ``champion`` alias then
    follows the restored champion. During a rollout the candidate is rejected: its challenger
    alias is removed and a ``rolled_back`` rollout event is recorded.

    Args:
        expected_version: the version the caller based the rollback on (default: the latest
            version read now); the write fails with a conflict if another writer came first.
        routing_only: write routing without checking or moving the aliases, for when traffic
            must move while the registry is down; ``reconcile_registry`` repairs them later.

    Raises:
        NotFoundError: the model or ``to_version`` does not exist, or the registry does not
            hold the model or the champion version that ``to_version`` serves.
        ConfigurationError: ``to_version`` routes traffic to a canary or shadow version.
        RoutingConflictError: the latest version is no longer ``expected_version``.
        RegistryUnavailableError: the registry did not respond; the message says whether the
            routing write had happened.
    """
    store = RoutingStore(get_engine(settings.warehouse_url), redis_url=settings.redis_url)
    history = store.history(model)
    latest = history[-1] if history else store.require_current(model)
    if expected_version is None:
        expected_version = latest.version
    if expected_version != latest.version:
        # Found before the registry check, so a stale command touches neither store.
        raise RoutingConflictError(
            f"routing config of {model!r} changed since v{expected_version} (the latest is now "
            f"v{latest.version}); read the current config and apply the change again"
        )
    target = store.get(model, to_version)
    _check_target(history, target)
    state = active_rollout(history)
    client = None
    if not routing_only:
        client = _check_before_write(settings, model, latest, target.champion_version)

    evidence: dict[str, Any] = {"rolled_back_to": to_version, "rolled_back_from": expected_version}
    if state is not None:
        evidence |= {
            "candidate_version": state.candidate_version,
            "from_stage": stage_label(state.current),
            "rollout_started_version": state.started.version,
            "rejected_candidate": True,
        }
    if routing_only:
        evidence["aliases_pending"] = "written with --routing-only; aliases not checked"
    config = store.write(
        model,
        target.target(),
        expected_version=expected_version,
        stage=RoutingStage.ROLLBACK,
        actor=actor,
        reason=reason,
        evidence=evidence,
    )
    if state is not None:
        _record_rejection(store, state, config, actor=actor, reason=reason)
    if client is not None:
        follow_routing(settings, client, config, store)
    _send_rollback_alert(settings, store, config, actor=actor, reason=reason)
    return config


def _send_rollback_alert(
    settings: Settings, store: RoutingStore, config: RoutingConfig, *, actor: str, reason: str
) -> None:
    """Tell the model's owners that someone moved traffic by hand; a failed send only logs."""
    evidence = config.evidence
    fields = {
        "Routing version": config.version,
        "Restored from": f"v{evidence['rolled_back_to']}",
        "Champion": config.champion_version,
        "By": actor,
        "Reason": reason,
    }
    if evidence.get("rejected_candidate"):
        fields["Rejected candidate"] = evidence["candidate_version"]
    alert = Alert(
        kind=AlertKind.ROLLBACK,
        title=f"{config.model}: manual rollback to routing v{evidence['rolled_back_to']}",
        model=config.model,
        severity=Severity.CRITICAL,
        fields=fields,
    )
    try:
        build_alert_sink(settings, store.engine).send(alert)
    except AlertLogError as exc:
        logger.warning("manual rollback alert for %s not sent: %s", config.model, exc)


def _check_target(history: list[RoutingConfig], target: RoutingConfig) -> None:
    """Reject a target that routes traffic to a canary or shadow, which no rollout would drive."""
    if target.canary_version is None and not target.shadow_versions:
        return
    routed = []
    if target.canary_version is not None:
        routed.append(f"canary {target.canary_version} at {target.canary_share:.0%}")
    if target.shadow_versions:
        routed.append("shadow " + ", ".join(target.shadow_versions))
    earlier = [
        config.version
        for config in history
        if config.version < target.version
        and config.canary_version is None
        and not config.shadow_versions
    ]
    hint = f"; v{earlier[-1]} is the latest earlier one (champion only)" if earlier else ""
    raise ConfigurationError(
        f"routing v{target.version} of {target.model} routes traffic to "
        f"{' and '.join(routed)} ({target.stage.value} stage). A rollback restores a config "
        "without canary or shadow versions, because a restored canary or shadow would serve "
        f"traffic that no rollout evaluates{hint}. Start a new rollout with 'mlp rollout start' "
        "to try the version again"
    )


def _check_before_write(
    settings: Settings, model: str, latest: RoutingConfig, champion: str
) -> MlflowClient:
    """Check the registry, and that the champion to restore is registered with its model file.

    Without its file, no scoring service that starts afterwards could load the champion.
    """
    try:
        client = check_registry(settings, model)
        registry.get_version(client, model, champion)
        check_model_file(settings, model, champion, routing_version=latest.version)
        return client
    except RegistryUnavailableError as exc:
        raise RegistryUnavailableError(
            f"rollback of {model} not done: {exc}. Nothing was changed: routing stays at "
            f"v{latest.version} and no alias moved. Start the registry or point "
            "MLP_MLFLOW_TRACKING_URI / MLP_MLFLOW_REGISTRY_URI at it and run the rollback "
            "again. If traffic must move now, add --routing-only and run 'mlp routing "
            f"reconcile {model}' once the registry responds"
        ) from exc


def _record_rejection(
    store: RoutingStore,
    state: RolloutState,
    config: RoutingConfig,
    *,
    actor: str,
    reason: str,
) -> None:
    events.record_event(
        store.engine,
        model=state.model,
        candidate_version=state.candidate_version,
        stage=stage_label(state.current),
        decision=events.ROLLED_BACK,
        actor=actor,
        routing_version=state.current.version,
        metrics={
            "manual": True,
            "reason": reason,
            "rolled_back_to": config.evidence["rolled_back_to"],
            "written_routing_version": config.version,
        },
    )
    logger.warning(
        "%s rolled back %s version %s at %s by hand: %s",
        actor,
        state.model,
        state.candidate_version,
        stage_label(state.current),
        reason,
    )


def reconcile_registry(settings: Settings, model: str) -> tuple[RoutingConfig, list[str]]:
    """Move the MLflow aliases of ``model`` to match its latest routing config.

    Returns:
        The latest routing config and the alias changes made (empty when they agreed).

    Raises:
        NotFoundError: the model has no routing config, or the registry does not hold it.
        RegistryUnavailableError: the registry did not respond or failed part way; the message
            lists what had changed.
    """
    store = RoutingStore(get_engine(settings.warehouse_url), redis_url=settings.redis_url)
    latest = store.require_current(model)
    client = check_registry(settings, model)
    try:
        changes = reconcile_aliases(client, model, latest)
    except REGISTRY_ERRORS as exc:
        raise RegistryUnavailableError(
            f"the MLflow registry at {safe_url(settings.registry_uri)} failed while moving the "
            f"aliases of {model} to match routing v{latest.version}: {exc}; run the command "
            "again once it responds"
        ) from exc
    if changes:
        logger.warning(
            "aliases of %s moved to match routing v%d: %s",
            model,
            latest.version,
            ", ".join(changes),
        )
    return latest, changes
