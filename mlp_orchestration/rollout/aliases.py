"""MLflow aliases that follow the routing config, and the registry check before routing writes.

The routing store (SQL) and the MLflow registry cannot share a transaction. A routing write that
moves aliases therefore checks first that the registry responds and contains the model, then writes
routing, records the decision, and moves the aliases last. A registry failure found by the
check changes nothing, except where traffic must move anyway: an automatic rollback and
``mlp routing rollback --routing-only`` write routing and leave the aliases pending. A failure
after the routing write leaves the aliases behind the routing config; ``reconcile_aliases``
(``mlp routing reconcile`` and every idle rollout sensor tick) brings them in line again.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import lightgbm as lgb
import mlflow
import sqlalchemy as sa
from lightgbm.basic import LightGBMError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request_safe

from mlp_orchestration import registry
from mlp_orchestration.errors import ErrorCategory, MlpError, ModelLoadError, NotFoundError
from mlp_orchestration.rollout.state import ACTIVE_STAGES, candidate_of
from mlp_orchestration.routing.config import RoutingConfig, RoutingStage
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import Settings, safe_url

logger = logging.getLogger(__name__)

# The check tries an HTTP store three times, with a 5 s timeout each and at most 2.5 s of backoff
# in all. It gives up within about 18 s on a silent host and about 3 s on a refused connection.
# With MLflow 3.17's default retries, one refused HTTP call took about 4 minutes to fail here, and
# its SQL stores retry the first connection for about 100 s.
CHECK_TIMEOUT_S = 5
CHECK_RETRIES = 2
_GET_REGISTERED_MODEL = "/api/2.0/mlflow/registered-models/get"
_HEALTH = "/health"
_SQL_SCHEMES = ("postgresql", "mysql", "mssql")
# Errors of an MLflow client call whose store is unreachable or broken: MLflow wraps HTTP
# failures in MlflowException, but its SQL stores let SQLAlchemy errors through.
REGISTRY_ERRORS = (MlflowException, sa.exc.SQLAlchemyError, OSError)
# Alias moves repeated when newer routing versions keep arriving during the move.
_FOLLOW_ATTEMPTS = 5


class RegistryUnavailableError(MlpError):
    """The MLflow registry did not respond, so aliases could not be read or moved."""

    category = ErrorCategory.UNAVAILABLE

    def __init__(self, message: str, *, written: RoutingConfig | None = None) -> None:
        super().__init__(message)
        self.written = written


def check_registry(
    settings: Settings, model: str, client: MlflowClient | None = None
) -> MlflowClient:
    """Check that the MLflow registry responds and contains the registered model ``model``.

    Each remote store is probed with a short timeout before any client exists, because creating
    an ``MlflowClient`` on a SQL store already connects to it.

    Args:
        client: a client to reuse; by default one is created after the stores responded.

    Returns:
        A client of the checked stores.

    Raises:
        RegistryUnavailableError: the registry or tracking store did not respond or failed.
        NotFoundError: the registry responds but has no registered model named ``model``.
    """
    uri = settings.registry_uri
    try:
        _probe(uri, model)
    except REGISTRY_ERRORS as exc:
        raise _unavailable(exc, f"the MLflow registry at {safe_url(uri)}") from exc
    if settings.tracking_uri != uri:
        try:
            _probe(settings.tracking_uri, None)
        except REGISTRY_ERRORS as exc:
            where = f"the MLflow tracking store at {safe_url(settings.tracking_uri)}"
            raise _unavailable(exc, where) from exc
    try:
        client = client or registry.configure(settings)
        client.get_registered_model(model)
    except REGISTRY_ERRORS as exc:
        if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(
                f"model {model!r} is not registered in the MLflow registry at {safe_url(uri)}; "
                "check that MLP_MLFLOW_REGISTRY_URI (or MLP_MLFLOW_TRACKING_URI) names the "
                "registry that holds its versions"
            ) from exc
        raise _unavailable(exc, f"the MLflow registry at {safe_url(uri)}") from exc
    return client


def check_model_file(settings: Settings, model: str, version: str, *, routing_version: int) -> None:
    """Check that the version's native model file still downloads and parses as a LightGBM model.

    A registered version whose files were deleted, moved or damaged keeps its registry row, so a
    routing write to it would succeed while no scoring service that starts afterwards could load
    it. The file is parsed, not only listed, as the scoring service would.

    Raises:
        RegistryUnavailableError: the artifact store did not respond.
        NotFoundError: the version's ``model.lgb`` is missing or is not a LightGBM model.
    """
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=f"models:/{model}/{version}")
    except REGISTRY_ERRORS as exc:
        raise _unavailable(exc, f"the MLflow artifact store of {model} version {version}") from exc
    nothing_changed = (
        f"Nothing was changed: routing stays at v{routing_version}. Restore the version's "
        "artifacts in the MLflow artifact store, or choose a routing version whose champion's "
        f"files are intact ('mlp routing history {model}')"
    )
    if not any(entry.path == registry.NATIVE_MODEL_FILE for entry in listed):
        found = ", ".join(sorted(entry.path for entry in listed)) or "no files"
        raise NotFoundError(
            f"{model} version {version} is registered, but its artifacts no longer include "
            f"{registry.NATIVE_MODEL_FILE!r} (found: {found}), so a scoring service that starts "
            f"could not load it. {nothing_changed}"
        )
    with tempfile.TemporaryDirectory(prefix="mlp-model-check-") as scratch:
        path = Path(scratch) / registry.NATIVE_MODEL_FILE
        try:
            registry.download_native_model(settings, model, version, path)
            lgb.Booster(model_file=str(path))
        except (ModelLoadError, LightGBMError) as exc:
            raise NotFoundError(
                f"{model} version {version} is registered, but its {registry.NATIVE_MODEL_FILE} "
                f"does not load as a LightGBM model ({_detail(exc)}), so a scoring service that "
                f"starts could not load it. {nothing_changed}"
            ) from exc


def _unavailable(exc: BaseException, where: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(f"{where} did not respond: {_detail(exc)}")


def _probe(uri: str, model: str | None) -> None:
    """Reach a store once with a short timeout; local stores are left to the client.

    An HTTP server is asked for the registered model ``model`` (or its health endpoint when
    None); a "not found" response still proves that it responds.
    """
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme in ("http", "https"):
        try:
            http_request_safe(
                get_default_host_creds(uri),
                _GET_REGISTERED_MODEL if model else _HEALTH,
                "GET",
                max_retries=CHECK_RETRIES,
                backoff_factor=1,
                backoff_jitter=0.5,
                timeout=CHECK_TIMEOUT_S,
                params={"name": model} if model else None,
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    elif scheme in _SQL_SCHEMES:
        connect_args = {"connect_timeout": CHECK_TIMEOUT_S} if scheme == "postgresql" else {}
        engine = sa.create_engine(uri, connect_args=connect_args, poolclass=sa.pool.NullPool)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()


def _detail(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, MlflowException) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:400]


def reconcile_aliases(client: MlflowClient, model: str, latest: RoutingConfig) -> list[str]:
    """Move the MLflow aliases so they name what the latest routing config serves.

    ``champion`` follows the config's champion. ``challenger`` is removed once its version
    became the champion (PROMOTED) or was taken out of traffic (ROLLED_BACK, or a ROLLBACK
    during a rollout, whose evidence names the ``candidate_version``), and set to the candidate
    of a SHADOW or CANARY config when the alias is unset.

    Returns:
        The changes made, e.g. ``["champion -> 7"]``; empty when the aliases already agree.
    """
    changes: list[str] = []
    champion = registry.alias_version(client, model, registry.CHAMPION)
    challenger = registry.alias_version(client, model, registry.CHALLENGER)
    if champion != latest.champion_version:
        registry.set_alias(client, model, registry.CHAMPION, latest.champion_version)
        changes.append(f"{registry.CHAMPION} -> {latest.champion_version}")
    if challenger is not None and challenger == _retired_candidate(latest):
        registry.remove_alias(client, model, registry.CHALLENGER)
        changes.append(f"{registry.CHALLENGER} removed (was {challenger})")
    candidate = candidate_of(latest) if latest.stage in ACTIVE_STAGES else None
    if candidate is not None and challenger is None:
        registry.set_alias(client, model, registry.CHALLENGER, candidate)
        changes.append(f"{registry.CHALLENGER} -> {candidate}")
    return changes


def _retired_candidate(config: RoutingConfig) -> str | None:
    """Return the version whose ``challenger`` alias a finished rollout removes, if any."""
    if config.stage == RoutingStage.PROMOTED:
        return config.champion_version
    if config.stage in (RoutingStage.ROLLED_BACK, RoutingStage.ROLLBACK):
        named = config.evidence.get("candidate_version")
        return named if isinstance(named, str) else None
    return None


def follow_routing(
    settings: Settings,
    client: MlflowClient,
    written: RoutingConfig,
    store: RoutingStore | None = None,
) -> list[str]:
    """Move the aliases after a routing write, turning registry failures into a clear error.

    With ``store``, the aliases end up matching the latest routing config, not only ``written``:
    when another writer wrote a newer version while this one moved the aliases (two overlapping
    rollbacks, say), the move is repeated for the newer version, so the writer that finishes last
    leaves the aliases on the config that is in effect.

    Raises:
        RegistryUnavailableError: the registry failed; the message names the routing version
            already written, the aliases moved before the failure and the repair command.
    """
    model = written.model
    target = written
    changes: list[str] = []
    try:
        for _ in range(_FOLLOW_ATTEMPTS):
            changes += reconcile_aliases(client, model, target)
            latest = store.current(model) if store is not None else None
            if latest is None or latest.version == target.version:
                return changes
            logger.info(
                "routing of %s moved from v%d to v%d while its aliases moved; following v%d",
                model,
                target.version,
                latest.version,
                latest.version,
            )
            target = latest
    except REGISTRY_ERRORS as exc:
        raise RegistryUnavailableError(
            f"routing v{written.version} of {model} was written and scoring follows it, but the "
            f"MLflow registry at {safe_url(settings.registry_uri)} failed while moving the "
            f"aliases to match it: {_detail(exc)}. The aliases may still name the previous "
            f"versions ('mlp status' shows whether they disagree). Run 'mlp routing reconcile "
            f"{model}' once the registry responds; a running rollout sensor does the same at its "
            "next idle tick.",
            written=written,
        ) from exc
    logger.warning(
        "routing of %s kept changing while its aliases moved; 'mlp routing reconcile %s' or the "
        "next idle rollout sensor tick brings them in line",
        model,
        model,
    )
    return changes
