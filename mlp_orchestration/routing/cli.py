"""``mlp routing``: read the routing history, compare versions, roll back, reconcile the MLflow
aliases and approve promotions.

Every write goes through the routing store's compare-and-set, so a command based on a stale
version fails with a conflict (exit code 2) instead of overwriting a newer config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from mlp_orchestration.routing.config import RoutingConfig
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.settings import get_settings
from mlp_orchestration.warehouse import get_engine

logger = logging.getLogger(__name__)

# Fields compared by `mlp routing diff`, traffic first.
DIFF_FIELDS = [
    "champion_version",
    "canary_version",
    "canary_share",
    "shadow_versions",
    "stage",
    "actor",
    "reason",
    "created_at",
    "evidence",
]


def register(subparsers: argparse._SubParsersAction, bench_subparsers: Any) -> None:
    """Add ``mlp routing`` and its subcommands."""
    routing = subparsers.add_parser(
        "routing", help="Show, compare, roll back, reconcile and approve routing configs."
    )
    commands = routing.add_subparsers(dest="routing_command", required=True, metavar="ACTION")

    show = commands.add_parser("show", help="Print the current routing config of a model.")
    show.add_argument("model", help="Model name, as in its spec.")
    show.add_argument("--json", action="store_true", help="Print the config as JSON.")
    show.set_defaults(handler=_show)

    history = commands.add_parser(
        "history", help="Print every routing config version: who, when, why and evidence."
    )
    history.add_argument("model", help="Model name, as in its spec.")
    history.add_argument("--json", action="store_true", help="Print the history as JSON.")
    history.set_defaults(handler=_history)

    diff = commands.add_parser("diff", help="Show what changed between two config versions.")
    diff.add_argument("model", help="Model name, as in its spec.")
    diff.add_argument("v1", type=_positive_int, help="Older config version.")
    diff.add_argument("v2", type=_positive_int, help="Newer config version.")
    diff.add_argument("--json", action="store_true", help="Print the differences as JSON.")
    diff.set_defaults(handler=_diff)

    rollback = commands.add_parser(
        "rollback",
        help="Write a new config version whose traffic equals an earlier version.",
        description="Write a new config version whose traffic equals an earlier version, after "
        "checking that the MLflow registry responds, then move the champion alias to the "
        "restored champion. During a rollout this rejects the candidate: its challenger alias "
        "is removed and the rollback is recorded as a rollout event.",
    )
    rollback.add_argument("model", help="Model name, as in its spec.")
    rollback.add_argument(
        "--to",
        dest="to_version",
        type=_positive_int,
        required=True,
        help="Config version whose traffic to restore.",
    )
    rollback.add_argument("--by", dest="actor", required=True, help="Who rolls back.")
    rollback.add_argument("--reason", required=True, help="Why, recorded in the history.")
    rollback.add_argument(
        "--expected-version",
        type=_positive_int,
        default=None,
        help="Config version this rollback is based on; the write fails if the latest differs "
        "(default: the latest version when the command starts).",
    )
    rollback.add_argument(
        "--routing-only",
        action="store_true",
        help="Write the routing config without checking or moving the MLflow aliases, for when "
        "traffic must move while the registry is down; run 'mlp routing reconcile' later.",
    )
    rollback.set_defaults(handler=_rollback)

    reconcile = commands.add_parser(
        "reconcile",
        help="Move the MLflow aliases to match the latest routing config.",
        description="Move the MLflow champion and challenger aliases so they name what the "
        "latest routing config serves, e.g. after a routing write whose alias update failed.",
    )
    reconcile.add_argument("model", help="Model name, as in its spec.")
    reconcile.set_defaults(handler=_reconcile)

    approve = commands.add_parser(
        "approve",
        help="Approve promotion of the model's rollout in progress; the approver must differ "
        "from whoever started the rollout.",
        description="Approve promotion of the model's rollout in progress. The approval "
        "records the --by name, the OS user running the command and MLP_ACTOR. It is rejected "
        "when --by names the rollout's starter, or when the rollout was started with 'mlp "
        "rollout start' from the same OS user. Identity comes from the environment, not from "
        "an identity provider: anyone who can run this under another OS account, or set USER "
        "or LOGNAME, can approve, and rollouts started by the rollout sensor record no OS user, "
        "so only the --by names are compared for them.",
    )
    approve.add_argument("model", help="Model name, as in its spec.")
    approve.add_argument(
        "--by",
        dest="approver",
        required=True,
        help="Who approves (free text, recorded with the OS user and MLP_ACTOR).",
    )
    approve.add_argument("--note", default="", help="Optional note kept with the approval.")
    approve.set_defaults(handler=_approve)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a version number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, got {value}")
    return value


def _store() -> RoutingStore:
    settings = get_settings()
    return RoutingStore(get_engine(settings.warehouse_url), redis_url=settings.redis_url)


def _dump(config: RoutingConfig) -> dict[str, Any]:
    raw = config.model_dump(mode="json")
    first = ["model", "version", "stage", *DIFF_FIELDS]
    return {name: raw[name] for name in first if name in raw} | raw


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _describe(config: RoutingConfig) -> str:
    canary = (
        f"{config.canary_version} at {config.canary_share:.0%}"
        if config.canary_version is not None
        else "none"
    )
    shadows = ", ".join(config.shadow_versions) or "none"
    return (
        f"v{config.version}  {config.created_at.isoformat(timespec='seconds')}  "
        f"{config.stage.value}  by {config.actor}\n"
        f"  champion {config.champion_version}  canary {canary}  shadows {shadows}\n"
        f"  reason: {config.reason}"
    )


def _show(args: argparse.Namespace) -> int:
    config = _store().require_current(args.model)
    if args.json:
        _write_json(_dump(config))
        return 0
    sys.stdout.write(_describe(config) + "\n")
    if config.evidence:
        sys.stdout.write("  evidence: " + json.dumps(config.evidence, sort_keys=True) + "\n")
    return 0


def _history(args: argparse.Namespace) -> int:
    store = _store()
    configs = store.history(args.model)
    if not configs:
        store.require_current(args.model)
    if args.json:
        _write_json([_dump(config) for config in configs])
        return 0
    for config in configs:
        sys.stdout.write(_describe(config) + "\n")
        if config.evidence:
            sys.stdout.write("  evidence: " + json.dumps(config.evidence, sort_keys=True) + "\n")
    return 0


def diff_configs(older: RoutingConfig, newer: RoutingConfig) -> dict[str, dict[str, Any]]:
    """Return ``{field: {"from": old, "to": new}}`` for every field that differs."""
    before, after = _dump(older), _dump(newer)
    return {
        name: {"from": before[name], "to": after[name]}
        for name in DIFF_FIELDS
        if before[name] != after[name]
    }


def _diff(args: argparse.Namespace) -> int:
    store = _store()
    older, newer = store.get(args.model, args.v1), store.get(args.model, args.v2)
    changes = diff_configs(older, newer)
    if args.json:
        _write_json({"model": args.model, "from": args.v1, "to": args.v2, "changes": changes})
        return 0
    if not changes:
        sys.stdout.write(f"v{args.v1} and v{args.v2} of {args.model} are identical\n")
        return 0
    sys.stdout.write(f"{args.model}: v{args.v1} -> v{args.v2}\n")
    for name, change in changes.items():
        before = json.dumps(change["from"], sort_keys=True)
        after = json.dumps(change["to"], sort_keys=True)
        sys.stdout.write(f"  {name}: {before} -> {after}\n")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlp_orchestration.rollout.manual import rollback_routing

    config = rollback_routing(
        get_settings(),
        args.model,
        to_version=args.to_version,
        expected_version=args.expected_version,
        actor=args.actor,
        reason=args.reason,
        routing_only=args.routing_only,
    )
    sys.stdout.write(
        f"{args.model}: wrote v{config.version}, equal in traffic to v{args.to_version}; "
        f"scoring services follow within their polling interval\n"
    )
    rejected = config.evidence.get("candidate_version")
    if rejected is not None:
        sys.stdout.write(
            f"  rejected version {rejected}, the candidate of the rollout in progress "
            f"({config.evidence['from_stage']})\n"
        )
    if args.routing_only:
        sys.stdout.write(
            f"  MLflow aliases not checked or moved; run 'mlp routing reconcile {args.model}' "
            "once the registry responds\n"
        )
    sys.stdout.write(_describe(config) + "\n")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from mlp_orchestration.rollout.manual import reconcile_registry

    latest, changes = reconcile_registry(get_settings(), args.model)
    if not changes:
        sys.stdout.write(
            f"{args.model}: the MLflow aliases already match routing v{latest.version}\n"
        )
        return 0
    sys.stdout.write(
        f"{args.model}: moved the MLflow aliases to match routing v{latest.version}: "
        f"{', '.join(changes)}\n"
    )
    return 0


def _approve(args: argparse.Namespace) -> int:
    from mlp_orchestration.rollout.approval import approve_rollout

    approval = approve_rollout(get_settings(), args.model, approver=args.approver, note=args.note)
    identity = approval.approver_identity
    os_user = identity.os_user if identity and identity.os_user else "unknown"
    mlp_actor = identity.mlp_actor if identity and identity.mlp_actor else "unset"
    sys.stdout.write(
        f"{args.model}: promotion of version {approval.candidate_version} approved by "
        f"{approval.approver} (OS user {os_user}, MLP_ACTOR {mlp_actor}; rollout started by "
        f"{approval.started_by} at routing v{approval.rollout_started_version}); the rollout "
        "promotes it once its last stage is healthy\n"
    )
    return 0
