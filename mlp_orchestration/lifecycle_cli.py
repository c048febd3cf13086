"""`mlp demo`, `mlp status`, `mlp lifecycle run`, `mlp settings` and `mlp specs validate`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from mlp_orchestration import keys
from mlp_orchestration.cli import finite_float
from mlp_orchestration.settings import describe_settings, get_settings, resolved_settings
from mlp_orchestration.spec import get_spec, load_spec_file, load_specs, parse_as_of


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="Run the whole loop on the real data (main job).")
    demo.add_argument("--model", default="fraud", help="Model spec to run (default fraud).")
    demo.add_argument(
        "--replay-until",
        default="2013-09-03T00:00:00Z",
        help="Replay day two's transactions up to this event time (ISO 8601; default the "
        "end of day two).",
    )
    demo.add_argument(
        "--rate",
        type=finite_float,
        default=2500.0,
        help="Replay rate in transactions/s (default 2500).",
    )
    demo.add_argument(
        "--no-rollout",
        action="store_true",
        help="Stop after the first drift reports: no retrain and no rollout.",
    )
    demo.set_defaults(handler=_demo)

    status = subparsers.add_parser("status", help="Champion, routing and figures per model.")
    status.add_argument("--json", action="store_true", help="Print JSON.")
    status.set_defaults(handler=_status)

    lifecycle = subparsers.add_parser("lifecycle", help="Run a model's lifecycle job.")
    lifecycle_sub = lifecycle.add_subparsers(dest="lifecycle_command", required=True)
    run = lifecycle_sub.add_parser("run", help="Load, snapshot, train, gate and promote a model.")
    run.add_argument("model", help="Model name (a spec in MLP_SPECS_DIR).")
    run.add_argument("--as-of", help="Snapshot cut-off, ISO 8601 (default: the spec's as_of).")
    run.add_argument(
        "--retrain", action="store_true", help="Run the retrain job (skips ingestion)."
    )
    run.set_defaults(handler=_lifecycle_run)

    settings = subparsers.add_parser("settings", help="List every setting and its value.")
    settings.add_argument("--json", action="store_true", help="Print JSON.")
    settings.set_defaults(handler=_settings)

    home = subparsers.add_parser(
        "dagster-home", help="Prepare DAGSTER_HOME (dagster.yaml for the profile) and print it."
    )
    home.set_defaults(handler=_dagster_home)

    ui = subparsers.add_parser("ui", help="Start `dagster dev` on this project's instance.")
    ui.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000).")
    ui.set_defaults(handler=_ui)

    specs = subparsers.add_parser("specs", help="Validate model spec files.")
    specs_sub = specs.add_subparsers(dest="specs_command", required=True)
    validate = specs_sub.add_parser("validate", help="Validate spec files (default: all).")
    validate.add_argument("paths", nargs="*", type=Path, help="Spec files to validate.")
    validate.set_defaults(handler=_specs_validate)


def _demo(args: argparse.Namespace) -> int:
    from mlp_orchestration.demo import DemoOptions, run_demo
    from mlp_orchestration.errors import ConfigurationError

    options = DemoOptions(model=args.model, rate=args.rate, rollout=not args.no_rollout)
    until = parse_as_of(args.replay_until, source="--replay-until")
    first_end = options.replay_start + timedelta(hours=options.first_replay_hours)
    if until is None or not first_end < until <= options.replay_end:
        raise ConfigurationError(
            f"--replay-until {args.replay_until!r} must be after {first_end.isoformat()} and "
            f"no later than {options.replay_end.isoformat()} (the end of the data)"
        )
    if args.rate <= 0:
        raise ConfigurationError(f"--rate {args.rate} must be a positive number of transactions/s")
    run_demo(get_settings(), replace(options, replay_end=until))
    return 0


def _status(args: argparse.Namespace) -> int:
    from mlp_orchestration.lifecycle import platform_status

    status = platform_status(get_settings())
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    for name, model in status["models"].items():
        print(
            f"{name}: champion {_version(model['champion_version'])}, "
            f"challenger {_version(model['challenger_version'])}, "
            f"routing config {_version(model['routing_version'])}"
        )
        if model["holdout"]:
            print(
                f"  holdout PR-AUC {model['holdout']['pr_auc']:.4f}, "
                f"ROC-AUC {model['holdout']['roc_auc']:.4f}"
            )
        if not model["consistent"]:
            print("  WARNING: the MLflow champion alias and the routing config disagree")
    return 0


def _version(value: object) -> str:
    return "none" if value is None else f"v{value}"


def _lifecycle_run(args: argparse.Namespace) -> int:
    from mlp_orchestration.instance import open_instance
    from mlp_orchestration.lifecycle import run_lifecycle

    settings = get_settings()
    spec = get_spec(load_specs(settings.specs_dir), args.model)
    result = run_lifecycle(
        settings,
        open_instance(settings),
        spec,
        action=keys.RETRAIN if args.retrain else keys.LIFECYCLE,
        as_of=parse_as_of(args.as_of, source="--as-of"),
    )
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "success": result.success,
                "snapshot_hash": result.snapshot_hash,
                "checks": result.checks,
                "candidate_version": result.candidate.version if result.candidate else None,
                "gates": result.gate_report.verdicts() if result.gate_report else None,
                "promotion": result.promotion.as_dict() if result.promotion else None,
            },
            indent=2,
        )
    )
    return 0 if result.success else 1


def _settings(args: argparse.Namespace) -> int:
    rows = describe_settings()
    resolved = resolved_settings(get_settings())
    if args.json:
        print(json.dumps({"settings": rows, "resolved": resolved}, indent=2))
        return 0
    width = max(len(row["env"]) for row in rows)
    for row in rows:
        print(f"{row['env']:<{width}}  {row['type']}, default {row['default']}")
        print(f"{'':<{width}}  {row['description']}")
    print("\nValues in this environment (passwords and tokens hidden):")
    width = max(len(name) for name in resolved)
    for name, value in resolved.items():
        print(f"  {name:<{width}}  {value}")
    return 0


def _specs_validate(args: argparse.Namespace) -> int:
    # Loading a spec validates it, LightGBM parameters of the built-in trainer included.
    if args.paths:
        specs = {path: load_spec_file(path) for path in args.paths}
    else:
        settings = get_settings()
        specs = {
            settings.specs_dir / f"{name}.yaml": spec
            for name, spec in load_specs(settings.specs_dir).items()
        }
    for path, spec in specs.items():
        print(f"{path}: valid spec for model {spec.name!r}")
    return 0


def _dagster_home(args: argparse.Namespace) -> int:
    from mlp_orchestration.instance import prepare_dagster_home

    print(prepare_dagster_home(get_settings()))
    return 0


def _ui(args: argparse.Namespace) -> int:
    import os
    import shutil
    import signal
    import sys

    from mlp_orchestration.errors import ConfigurationError
    from mlp_orchestration.instance import prepare_dagster_home
    from mlp_orchestration.settings import PROJECT_DIR

    prepare_dagster_home(get_settings())
    # The dagster command sits next to this interpreter in the same environment.
    beside = Path(sys.executable).with_name("dagster")
    dagster = str(beside) if beside.is_file() else shutil.which("dagster")
    if dagster is None:
        raise ConfigurationError(
            f"the dagster command is neither at {beside} nor on PATH; install the project "
            "(make venv) and run mlp from its environment"
        )
    command = [
        dagster,
        "dev",
        "-w",
        str(PROJECT_DIR / "workspace.yaml"),
        "-p",
        str(args.port),
        "-h",
        "127.0.0.1",
    ]
    os.chdir(PROJECT_DIR)
    # A shell starts a background job (`mlp ui &`) with SIGINT ignored, and an ignored signal
    # stays ignored across exec. `dagster dev` gives SIGTERM the same handler as SIGINT, so it
    # would ignore SIGTERM too and could not be stopped. With SIGINT at its default, Python
    # turns it into KeyboardInterrupt and dagster dev shuts its services down on either signal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(dagster, command)
    return 0
