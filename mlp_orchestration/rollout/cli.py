"""``mlp replay`` and ``mlp rollout``: replay traffic, start and step a rollout by hand."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from mlp_orchestration.cli import finite_float
from mlp_orchestration.settings import get_settings
from mlp_orchestration.spec import get_spec, load_specs


def register(subparsers: argparse._SubParsersAction, bench_subparsers: Any) -> None:
    """Add ``mlp replay`` and ``mlp rollout``."""
    replay = subparsers.add_parser(
        "replay",
        help="Send a window of real transactions to the scoring service; deliver labels later.",
    )
    replay.add_argument("model", help="Model name, as in its spec.")
    replay.add_argument(
        "--start",
        required=True,
        type=_utc_time,
        help="Window start, ISO 8601 event time (UTC when no offset).",
    )
    replay.add_argument(
        "--end", required=True, type=_utc_time, help="Window end (exclusive), ISO 8601 event time."
    )
    replay.add_argument("--rate", required=True, type=finite_float, help="Transactions per second.")
    replay.add_argument(
        "--label-delay",
        required=True,
        type=finite_float,
        metavar="S",
        help="Seconds after sending at which each transaction's label arrives.",
    )
    replay.add_argument(
        "--url", default=None, help="Scoring service base URL (default MLP_SCORING_URL)."
    )
    replay.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="Records per request; above 1 uses the batch endpoint (default 1).",
    )
    replay.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="Retries of a request that failed with 429, 5xx or no response.",
    )
    replay.add_argument(
        "--flush-labels",
        action="store_true",
        help="Deliver labels not yet due when sending ends, instead of waiting.",
    )
    replay.add_argument("--json", action="store_true", help="Print the report as JSON.")
    replay.set_defaults(handler=_replay)

    rollout = subparsers.add_parser("rollout", help="Start or evaluate a model's rollout.")
    commands = rollout.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    start = commands.add_parser("start", help="Put a version that passed its gates in shadow.")
    start.add_argument("model", help="Model name, as in its spec.")
    start.add_argument("--version", required=True, help="Registered version to roll out.")
    start.add_argument(
        "--by",
        dest="actor",
        required=True,
        help="Who starts the rollout (free text). The OS user running the command and "
        "MLP_ACTOR are recorded with it, and an approval from the same OS user is rejected.",
    )
    start.set_defaults(handler=_start)
    step = commands.add_parser(
        "step", help="Evaluate the rollout once and apply the decision, as the sensor does."
    )
    step.add_argument("model", help="Model name, as in its spec.")
    step.add_argument(
        "--by",
        dest="actor",
        default=None,
        help="Who is recorded for a routing change (default MLP_ACTOR).",
    )
    step.set_defaults(handler=_step)


def _utc_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2013-09-02T00:00:00Z, got {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _spec(model: str):
    return get_spec(load_specs(get_settings().specs_dir), model)


def _replay(args: argparse.Namespace) -> int:
    from mlp_orchestration.replay import ReplayError, TrafficReplay

    replay = TrafficReplay(
        get_settings(),
        _spec(args.model),
        start=args.start,
        end=args.end,
        rate=args.rate,
        label_delay_s=args.label_delay,
        scoring_url=args.url,
        batch_size=args.batch_size,
        max_retries=args.max_retries,
        progress=not args.json,
    )
    try:
        report = replay.run(flush_labels=args.flush_labels)
    except ReplayError as exc:
        _print_report(exc.report.as_dict(), args.json)
        raise
    _print_report(report.as_dict(), args.json)
    return 1 if report.failed else 0


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    sys.stdout.write(
        f"{report['model']}: sent {report['sent']} of {report['transactions']} transactions "
        f"at {report['rate']}/s; {report['scored']} scored, {report['failed']} failed, "
        f"{report['retries']} retries; {report['labels_delivered']} labels delivered\n"
        f"  arms {report['arms']}  routing versions {report['routing_versions']}\n"
    )
    for error in report["errors"]:
        sys.stdout.write(f"  error: {error}\n")


def _start(args: argparse.Namespace) -> int:
    from mlp_orchestration.rollout.context import RolloutContext
    from mlp_orchestration.rollout.identity import environment_identity
    from mlp_orchestration.rollout.transitions import start_rollout

    settings = get_settings()
    ctx = RolloutContext.create(settings, _spec(args.model))
    config = start_rollout(
        ctx,
        candidate_version=args.version,
        actor=args.actor,
        identity=environment_identity(settings),
    )
    sys.stdout.write(
        f"{args.model}: version {args.version} in shadow at routing "
        f"v{config.version} (started by {config.actor})\n"
    )
    return 0


def _step(args: argparse.Namespace) -> int:
    from mlp_orchestration.rollout.context import RolloutContext
    from mlp_orchestration.rollout.controller import step_rollout
    from mlp_orchestration.rollout.shadow_run import run_shadow_evaluation

    settings = get_settings()
    actor = args.actor or settings.actor
    ctx = RolloutContext.create(settings, _spec(args.model))
    outcome = step_rollout(ctx, actor=actor)
    if outcome.action.value == "evaluate_shadow":
        evaluation = run_shadow_evaluation(ctx, actor=actor)
        sys.stdout.write(
            f"shadow gate {evaluation.gate.verdict}; report {evaluation.report_path}\n"
        )
        outcome = step_rollout(ctx, actor=actor)
    sys.stdout.write(f"{args.model}: {outcome.action.value}: {outcome.message}\n")
    return 0
