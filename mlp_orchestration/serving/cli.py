"""``mlp serve`` and ``mlp bench serve``."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import sys
from typing import Any
from urllib.parse import urlparse

from mlp_orchestration.cli import finite_float
from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.settings import get_settings

logger = logging.getLogger(__name__)

APP_FACTORY = "mlp_orchestration.serving.app:create_app"


def register(subparsers: Any, bench_subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="Start the scoring service (FastAPI on uvicorn).",
        description="Serve every routed model of the routing store over HTTP.",
    )
    add_server_options(serve)
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="Log every request line (off by default: it costs throughput, and metrics and "
        "the prediction log already record each request).",
    )
    serve.set_defaults(handler=_serve)

    bench = bench_subparsers.add_parser(
        "serve",
        help="Compare this service, MLflow's server and a bare FastAPI app under wrk load.",
    )
    bench.add_argument("--json", action="store_true", help="End with one JSON line of figures.")
    bench.add_argument(
        "--duration",
        type=finite_float,
        default=20.0,
        help="Seconds of load per point (default 20).",
    )
    bench.add_argument(
        "--concurrency",
        default="1,8,32",
        help="Comma-separated open connections per point (default 1,8,32).",
    )
    bench.add_argument(
        "--workers", type=int, default=2, help="Worker processes of every server (default 2)."
    )
    bench.add_argument("--model", default="fraud", help="Model to serve (default fraud).")
    bench.add_argument(
        "--servers",
        default="ours,mlflow,bare",
        help="Comma-separated servers to measure among ours, mlflow, bare (default all).",
    )
    bench.set_defaults(handler=_bench)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    default_port = urlparse(get_settings().scoring_url).port or 8080
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="Interface to bind (default 127.0.0.1; 0.0.0.0 exposes the service to the network).",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"TCP port (default {default_port}, from MLP_SCORING_URL).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (default 1). Each loads every routed model; with more "
        "than one, metrics are merged through PROMETHEUS_MULTIPROC_DIR under MLP_HOME.",
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mlp_orchestration.serving.core.config import prepare_multiprocess_dir

    if args.workers < 1:
        raise ConfigurationError(f"--workers {args.workers} is invalid; use 1 or more")
    if not 0 < args.port < 65536:
        raise ConfigurationError(f"--port {args.port} is invalid; use 1 to 65535")
    settings = get_settings()
    if args.workers > 1:
        folder = prepare_multiprocess_dir(settings, args.port)
        logger.info("metrics of %d workers are merged through %s", args.workers, folder)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        **event_loop_options(),
        access_log=args.access_log,
        log_config=log_config(args.log_level),
    )
    return 0


def event_loop_options() -> dict[str, str]:
    """Pick uvloop and httptools when installed (uvicorn[standard] installs both).

    Measured with wrk on a 2-core cloud VM, uvicorn spent 25 us of CPU per request on an empty
    ASGI handler with them and 100 us with asyncio and h11.
    """
    has = importlib.util.find_spec
    return {
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "http": "httptools" if has("httptools") else "h11",
    }


def log_config(level: str) -> dict[str, Any]:
    """Return uvicorn's logging config plus the project's loggers.

    uvicorn applies this dict in every worker process, which would otherwise start without the
    handlers the ``mlp`` command set up.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["mlp"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["mlp"] = {
        "class": "logging.StreamHandler",
        "formatter": "mlp",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["mlp_orchestration"] = {
        "handlers": ["mlp"],
        "level": level,
        "propagate": False,
    }
    return config


def _bench(args: argparse.Namespace) -> int:
    from mlp_orchestration.serving.bench import run_serve_benchmark

    try:
        concurrency = [int(part) for part in args.concurrency.split(",") if part.strip()]
    except ValueError:
        raise ConfigurationError(
            f"--concurrency {args.concurrency!r} is invalid; use numbers such as 1,8,32"
        ) from None
    servers = [part.strip() for part in args.servers.split(",") if part.strip()]
    figures, record = run_serve_benchmark(
        get_settings(),
        model=args.model,
        duration_s=args.duration,
        concurrency=concurrency,
        workers=args.workers,
        servers=servers,
    )
    # The command's output is the figures: a table, the record's path, then the JSON line.
    out = sys.stdout
    out.write("concurrency  server  requests/s  p50_ms  p99_ms  errors\n")
    for level, per_server in figures["concurrency"].items():
        for name, row in per_server.items():
            out.write(
                f"{level:>11}  {name:<6}  {row['rps']:>10.0f}  {row['p50_ms']:>6.3f}  "
                f"{row['p99_ms']:>6.3f}  {row['errors']:>6}\n"
            )
    out.write(f"record: {record}\n")
    if args.json:
        out.write(json.dumps(figures) + "\n")
    return 0
