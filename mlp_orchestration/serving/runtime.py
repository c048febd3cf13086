"""The service's running parts, started and stopped together by the app's lifespan."""

from __future__ import annotations

import functools
import gc
import logging
import os

from sqlalchemy.engine import Engine

from mlp_orchestration.serving.follower import RoutingFollower
from mlp_orchestration.serving.loader import VersionLoader
from mlp_orchestration.serving.metrics import ServingMetrics
from mlp_orchestration.serving.predlog import PredictionLogWriter
from mlp_orchestration.serving.scorer import Scorer
from mlp_orchestration.serving.shadow import ShadowScorer, shadow_handler
from mlp_orchestration.settings import Settings, safe_url
from mlp_orchestration.warehouse import get_engine

logger = logging.getLogger(__name__)


class Runtime:
    """Metrics, routing follower, shadow scorer, prediction log writer and scorer of one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = [token.encode() for token in settings.api_token_list()]
        self.metrics = ServingMetrics()
        engine_provider = functools.partial(_engine, settings.warehouse_url)
        self.predlog = PredictionLogWriter(
            engine_provider=engine_provider,
            metrics=self.metrics,
            batch_size=settings.predlog_batch_size,
            buffer_size=settings.predlog_buffer_size,
            flush_s=settings.predlog_flush_s,
            stop_timeout_s=settings.predlog_stop_timeout_s,
        )
        self.shadow = ShadowScorer(
            queue_size=settings.shadow_queue_size,
            metrics=self.metrics,
            handler=shadow_handler(append=self.predlog.append, metrics=self.metrics),
        )
        self.follower = RoutingFollower(
            engine_provider=engine_provider,
            loader=VersionLoader(settings),
            metrics=self.metrics,
            poll_s=settings.routing_poll_s,
            store_url=safe_url(settings.warehouse_url),
            redis_url=settings.redis_url,
        )
        self.scorer = Scorer(
            metrics=self.metrics,
            log_prediction=self.predlog.append,
            submit_shadow=self.shadow.submit,
        )

    def start(self) -> None:
        self.predlog.start()
        self.shadow.start()
        self.follower.start()
        # Everything imported and built so far (MLflow, pandas, the app) lives as long as the
        # process. Freezing it keeps full garbage collections from walking those objects again
        # and again, which otherwise pauses every request for tens of milliseconds under load.
        gc.collect()
        gc.freeze()
        logger.info(
            "scoring service started (pid %d, auth %s, warehouse %s)",
            os.getpid(),
            "on" if self.tokens else "off",
            safe_url(self.settings.warehouse_url),
        )

    def stop(self) -> None:
        """Stop following routing, finish shadow jobs, then write the whole prediction log."""
        logger.info("scoring service stopping (pid %d)", os.getpid())
        self.follower.stop()
        self.shadow.stop()
        self.predlog.stop()
        self.metrics.mark_process_dead(os.getpid())
        logger.info("scoring service stopped (pid %d)", os.getpid())


def _engine(url: str) -> Engine:
    return get_engine(url)
