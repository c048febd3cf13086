"""Follows the routing store and swaps in a new serving state when a routing config changes.

A background thread polls ``RoutingStore.latest_versions`` every ``routing_poll_s`` seconds.
With ``MLP_REDIS_URL`` set, a second thread listens on the Redis channel the store publishes
to and wakes the poller at once. A changed config is applied only after every version it names
is downloaded, loaded and warmed; then the whole ``ServingState`` is replaced in one assignment.
When loading fails, the last good route keeps serving, the error is recorded in the state
(and in metrics), and the config is retried with exponential backoff. When the store itself
cannot be read, the routes read before keep serving and the error goes into the state, where
/readyz reports it and other model names get 503. Metrics count every failed read. The log
gets one line when the failure starts, one when its text changes, and one every few minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlp_orchestration.errors import MlpError
from mlp_orchestration.routing.config import RoutingConfig
from mlp_orchestration.routing.store import REDIS_CHANNEL, RoutingStore
from mlp_orchestration.serving.error_text import FULL_ERROR_IN_LOG, client_summary, log_text
from mlp_orchestration.serving.loader import VersionLoader
from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.repeats import Occurrence, RepeatedError
from mlp_orchestration.serving.state import LoadedVersion, LoadError, ModelRoute, ServingState
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

_MAX_RETRY_S = 60.0
# A failure that repeats with the same text is logged again after this many seconds.
_REPEAT_LOG_S = 300.0


class RoutingFollower:
    """Keeps ``state`` in line with the routing store."""

    def __init__(
        self,
        *,
        engine_provider: Callable[[], Engine],
        loader: VersionLoader,
        metrics: ServingMetrics,
        poll_s: float,
        store_url: str,
        redis_url: str | None = None,
    ) -> None:
        """Set up the follower; ``start`` begins polling.

        Args:
            store_url: the routing store's URL with any password hidden, for messages.
        """
        self._engine_provider = engine_provider
        self._loader = loader
        self._metrics = metrics
        self._poll_s = poll_s
        self._redis_url = redis_url
        self._store_url = store_url
        self.state = ServingState(store_url=store_url)
        self._loaded: dict[tuple[str, str], LoadedVersion] = {}
        self._retry_at: dict[str, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._refresh_lock = threading.Lock()
        self._store_failure = RepeatedError(interval_s=_REPEAT_LOG_S)
        self._refresh_failure = RepeatedError(interval_s=_REPEAT_LOG_S)

    def start(self) -> None:
        """Start the poll thread and, with Redis configured, the listener thread."""
        targets = [("mlp-routing-poll", self._poll_loop)]
        if self._redis_url:
            targets.append(("mlp-routing-redis", self._redis_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "routing follower started (poll every %.1f s, Redis %s)",
            self._poll_s,
            "on" if self._redis_url else "off",
        )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        logger.info("routing follower stopped")

    def wake(self) -> None:
        """Make the poll thread read the store now."""
        self._wake.set()

    def refresh(self) -> None:
        """Read the store once and apply every changed routing config."""
        with self._refresh_lock:
            self._refresh()

    def _refresh(self) -> None:
        try:
            # get_engine creates the folder and the schema, so OSError and MlpError come
            # from here as well as SQLAlchemy errors.
            store = RoutingStore(self._engine_provider())
            latest = store.latest_versions()
        except (MlpError, sa.exc.SQLAlchemyError, OSError) as exc:
            self._store_failed(exc)
            return
        self._store_recovered()
        state = replace(self.state, routed=frozenset(latest), store_read=True, store_error=None)
        for model, version in sorted(latest.items()):
            state = self._refresh_model(store, state, model, version)
        self._swap(state)

    def _refresh_model(
        self, store: RoutingStore, state: ServingState, model: str, version: int
    ) -> ServingState:
        current = state.routes.get(model)
        if current is not None and current.config.version == version:
            return state
        error = state.errors.get(model)
        retry_pending = time.monotonic() < self._retry_at.get(model, 0.0)
        if error is not None and error.routing_version == version and retry_pending:
            return state

        try:
            config = store.require_current(model)
            route = self._build_route(config)
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the last good route
            return self._record_failure(state, model, version, error, exc)

        self._retry_at.pop(model, None)
        self._metrics.load_error.labels(model).set(0)
        self._metrics.routing_version.labels(model).set(config.version)
        previous = f"v{current.config.version}" if current else "nothing"
        logger.info(
            "routing %s v%d applied (was %s): champion %s, canary %s at %.3f, shadows %s",
            model,
            config.version,
            previous,
            config.champion_version,
            config.canary_version,
            route.canary_share,
            list(config.shadow_versions),
        )

        errors = {k: v for k, v in state.errors.items() if k != model}
        return replace(
            state,
            routes=MappingProxyType({**state.routes, model: route}),
            errors=MappingProxyType(errors),
        )

    def _build_route(self, config: RoutingConfig) -> ModelRoute:
        loaded = {}
        for version in config.served_versions():
            key = (config.model, version)
            if key not in self._loaded:
                self._loaded[key] = self._loader.load(config.model, version)
            loaded[version] = self._loaded[key]
        return ModelRoute.build(config, loaded)

    def _record_failure(
        self,
        state: ServingState,
        model: str,
        version: int,
        previous: LoadError | None,
        exc: Exception,
    ) -> ServingState:
        failures = previous.failures + 1 if previous and previous.routing_version == version else 1
        message = log_text(exc)
        retry_s = min(_MAX_RETRY_S, self._poll_s * 2 ** (failures - 1))
        self._retry_at[model] = time.monotonic() + retry_s
        self._metrics.reload_failures.labels(model).inc()
        self._metrics.load_error.labels(model).set(1)
        serving = state.routes.get(model)
        logger.error(
            "routing %s v%d not applied (attempt %d, retry in %.0f s); still serving %s: %s",
            model,
            version,
            failures,
            retry_s,
            f"v{serving.config.version}" if serving else "nothing",
            message,
        )
        # Clients see this in 503 bodies and GET /v1/models/{model}, so it leaves out the SQL.
        summary = f"{client_summary(exc)} ({FULL_ERROR_IN_LOG})"
        error = LoadError(routing_version=version, message=summary, at=utcnow(), failures=failures)
        return replace(state, errors=MappingProxyType({**state.errors, model: error}))

    def _swap(self, state: ServingState) -> None:
        self.state = state
        in_use = {
            (model, loaded.version)
            for model, route in state.routes.items()
            for _, loaded in route.roles()
        }
        for key in list(self._loaded):
            # Versions of a failing config stay loaded, so its retry does not load them again.
            if key not in in_use and key[0] not in state.errors:
                del self._loaded[key]

    def _store_failed(self, exc: Exception) -> None:
        self._metrics.store_read_failures.inc()
        # The summary goes to /readyz and 503 bodies, and the log gets the whole text.
        error = client_summary(exc)
        if self.state.store_error != error:
            self.state = replace(self.state, store_error=error)
        occurrence = self._store_failure.occur(error)
        if occurrence is None:
            return
        serving = ", ".join(
            f"{model} v{route.config.version}" for model, route in sorted(self.state.routes.items())
        )
        logger.error(
            "cannot read the routing store at %s%s: %s; %s",
            self._store_url,
            _repeat_note(occurrence),
            log_text(exc),
            f"still serving {serving}" if serving else "serving nothing until it can be read",
        )

    def _store_recovered(self) -> None:
        failures = self._store_failure.clear()
        if failures:
            logger.info(
                "the routing store at %s is readable again after %d failed reads",
                self._store_url,
                failures,
            )

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any single failure
                occurrence = self._refresh_failure.occur(f"{type(exc).__name__}: {exc}")
                if occurrence is not None:
                    logger.exception(
                        "routing refresh failed%s; retrying at every poll",
                        _repeat_note(occurrence),
                    )
            else:
                self._refresh_failure.clear()
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def _redis_loop(self) -> None:
        import redis

        delay = 1.0
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self._redis_url, socket_timeout=5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(REDIS_CHANNEL)
                logger.info("listening for routing changes on Redis channel %s", REDIS_CHANNEL)
                # A change may have been published while this thread was not subscribed.
                self._wake.set()
                delay = 1.0
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        self._wake.set()
                pubsub.close()
                client.close()
            except redis.RedisError as exc:
                logger.warning(
                    "Redis routing channel unavailable (%s); polling continues, reconnecting "
                    "in %.0f s",
                    exc,
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)


def _repeat_note(occurrence: Occurrence) -> str:
    if occurrence.total == 1:
        return ""
    return (
        f" ({occurrence.total} failures so far, {occurrence.since_logged} in the "
        f"{occurrence.seconds_since_logged:.0f} s since the last message)"
    )
