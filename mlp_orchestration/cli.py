"""The ``mlp`` command line.

Each area registers its own subcommands (``register(subparsers)`` in its ``cli`` module), so this
file only assembles them and turns project errors into one-line messages with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from mlp_orchestration.errors import MlpError
from mlp_orchestration.serving.error_text import client_summary

# Modules that add subcommands; each exposes register(subparsers).
_COMMAND_MODULES = [
    "mlp_orchestration.lifecycle_cli",
    "mlp_orchestration.routing.cli",
    "mlp_orchestration.rollout.cli",
    "mlp_orchestration.serving.cli",
    "mlp_orchestration.monitoring.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlp",
        description="Control plane for risk models: lifecycle, routing, scoring and monitoring.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Log level of the mlp_orchestration loggers (default INFO).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = subparsers.add_parser("bench", help="Run a benchmark and print its figures.")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    parser.set_defaults(bench_subparsers=bench_sub)
    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers, bench_sub)
    return parser


def finite_float(text: str) -> float:
    """Parse an option value as a float, rejecting nan and inf (argparse ``type``).

    ``float()`` accepts "nan" and "inf", and every comparison with NaN is false, so NaN slips
    past a check such as ``value <= 0``. Options with a range use this type and keep that check.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give one such as 2.5")
    return value


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("mlp_orchestration").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Building the parser reads settings (defaults shown in --help), which may be invalid.
        parser = build_parser()
        args = parser.parse_args(argv)
        configure_logging(args.log_level)
        return int(args.handler(args) or 0)
    except MlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except sa.exc.SQLAlchemyError as exc:
        # A store that exists but is not this project's (another file, another schema).
        print(f"error: {_store_error(exc, STORES_HINT)}", file=sys.stderr)
        return 2
    except Exception as exc:
        # mlflow is imported only by the commands that use it, so its error class is looked up.
        mlflow_errors = sys.modules.get("mlflow.exceptions")
        if mlflow_errors is None or not isinstance(exc, mlflow_errors.MlflowException):
            raise
        print(f"error: MLflow failed: {_store_error(exc, MLFLOW_HINT)}", file=sys.stderr)
        return 2


STORES_HINT = (
    "check that MLP_DATABASE_URL and the MLflow URIs (mlp settings) name this project's stores"
)
MLFLOW_HINT = "check MLP_MLFLOW_TRACKING_URI and MLP_MLFLOW_REGISTRY_URI (mlp settings)"


def _store_error(exc: Exception, hint: str) -> str:
    """Return the first line of a store's error, without SQL text or passwords, and the hint."""
    return f"{client_summary(exc)}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
