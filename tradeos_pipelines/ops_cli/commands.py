"""The operator's commands: integrations, sync, status, logs (through the sidecar only).

Exit codes: 0 done; 1 the operation failed (a sync failed or timed out, a connection test
failed, the sidecar failed); 2 bad usage (unknown integration or entity, with the valid
choices; a field the sidecar refused; a refused token); 3 the sidecar did not answer (one
line naming the URL).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tradeos_pipelines.core.vocabulary import ENTITIES, LOGGED_ENTITIES
from tradeos_pipelines.ops_cli.client import (
    BadRequest,
    ServerError,
    SidecarClient,
    SidecarError,
    SidecarUnreachable,
    resolve_target,
)
from tradeos_pipelines.ops_cli.follow import EntityOutcome, EventStream, SyncFollower, follow
from tradeos_pipelines.ops_cli.output import (
    ensure_unicode_stdout,
    out,
    out_json,
    parse_since,
    table,
    when,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

Command = Callable[[SidecarClient, argparse.Namespace], int]


def fail(message: str, code: int) -> int:
    """One line on standard error; returns ``code``."""
    sys.stderr.write(f"tradeos: {message}\n")
    sys.stderr.flush()
    return code


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Open a client from ``--url``/``--token``/env, run ``command``, map errors to exit codes."""
    ensure_unicode_stdout()
    target = resolve_target(args.url, args.token)
    try:
        with SidecarClient(target) as client:
            return command(client, args)
    except SidecarUnreachable as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except BadRequest as exc:
        return fail(str(exc), EXIT_USAGE)
    except ValueError as exc:  # a malformed --since and the like
        return fail(str(exc), EXIT_USAGE)
    except (ServerError, SidecarError) as exc:
        return fail(str(exc), EXIT_FAILED)


# ----- integrations --------------------------------------------------------------------------


def integrations_list(client: SidecarClient, args: argparse.Namespace) -> int:
    """Every integration: id, name, enabled, 1C URL, conflict policy."""
    body = client.request("GET", "/integrations")
    if args.json:
        out_json(body["data"])
        return EXIT_OK
    if not body["data"]:
        out("no integrations yet: add one with `tradeos integrations add`")
        return EXIT_OK
    table(
        ["ID", "ENABLED", "POLICY", "1C URL", "NAME"],
        [
            (i["id"], i["enabled"], i["conflict_policy"], i["base_url"], i["name"])
            for i in body["data"]
        ],
    )
    return EXIT_OK


_SHOWN_FIELDS = (
    "id",
    "name",
    "base_url",
    "auth_type",
    "username",
    "enabled",
    "conflict_policy",
    "timezone",
    "page_size",
    "timeout_seconds",
    "cache_ttl_seconds",
    "webhook_path",
    "created_at",
    "updated_at",
)


def integrations_show(client: SidecarClient, args: argparse.Namespace) -> int:
    """One integration's settings (secrets masked) and its health."""
    integration = client.for_integration("GET", args.integration)
    health = client.for_integration("GET", args.integration, "/health")
    if args.json:
        out_json({"integration": integration, "health": health})
        return EXIT_OK
    for name in _SHOWN_FIELDS:
        value = integration.get(name)
        if name.endswith("_at"):
            value = when(value)
        out(f"{name + ':':<19}{'-' if value is None else value}")
    out()
    _print_health(health)
    return EXIT_OK


def integrations_add(client: SidecarClient, args: argparse.Namespace) -> int:
    """Create an integration; the webhook secret is shown once."""
    body: dict[str, Any] = {"name": args.name, "base_url": args.base_url}
    if args.username is not None:
        password = sys.stdin.readline().rstrip("\n") if args.password == "-" else args.password
        body |= {"auth_type": "basic", "username": args.username, "password": password}
    elif args.api_key is not None:
        api_key = sys.stdin.readline().rstrip("\n") if args.api_key == "-" else args.api_key
        body |= {"auth_type": "api_key", "api_key": api_key}
    else:
        return fail("give --api-key KEY, or --username USER --password PASS", EXIT_USAGE)
    for name in ("id", "conflict_policy", "timezone", "page_size", "timeout_seconds"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.disabled:
        body["enabled"] = False
    created = client.request("POST", "/integrations", json=body)
    if args.json:
        out_json(created)
        return EXIT_OK
    out(f"integration {created['id']} created ({created['name']}, {created['base_url']})")
    out(f"webhook URL path: {created['webhook_path']}")
    out(
        "webhook secret (shown only now; 1C signs its webhooks with it): "
        f"{created['webhook_secret']}"
    )
    return EXIT_OK


def integrations_test(client: SidecarClient, args: argparse.Namespace) -> int:
    """Call 1C's health through the sidecar; exit 1 when 1C does not answer well."""
    result = client.for_integration("POST", args.integration, "/test-connection")
    if args.json:
        out_json(result)
    elif result["ok"]:
        out(
            f"{args.integration}: 1C answers (version {result.get('version') or '?'}, "
            f"{result['latency_ms']:.0f} ms)"
        )
    else:
        out(f"{args.integration}: 1C does not answer: {result.get('error')}")
    return EXIT_OK if result["ok"] else EXIT_FAILED


def _switch(enabled: bool) -> Command:
    def switch(client: SidecarClient, args: argparse.Namespace) -> int:
        action = "enable" if enabled else "disable"
        integration = client.for_integration("POST", args.integration, f"/{action}")
        if args.json:
            out_json(integration)
        else:
            out(f"{integration['id']}: {action}d")
        return EXIT_OK

    switch.__doc__ = f"{'Enable' if enabled else 'Disable'} scheduled and sensor-driven syncs."
    return switch


# ----- sync ----------------------------------------------------------------------------------


def sync(client: SidecarClient, args: argparse.Namespace) -> int:
    """Ask the sidecar to sync now; with ``--wait`` follow the runs until they end."""
    entities = list(dict.fromkeys(args.entity or ENTITIES))
    stream: EventStream | None = None
    if args.wait:
        client.for_integration("GET", args.integration)  # unknown id: exit 2 before waiting
        stream = EventStream(client.target)
        stream.open()  # before the request, so no event of the new runs is missed
    try:
        launched = client.for_integration(
            "POST", args.integration, "/sync", json={"entities": entities, "full": args.full}
        )
        if not args.json:
            _print_launched(args.integration, launched)
        if stream is None:
            if args.json:
                out_json(launched)
            return EXIT_OK
        follower = SyncFollower(args.integration, entities)
        follower.expect_runs(launched["run_ids"])
        on_change = (lambda _o: None) if args.json else _print_progress
        finished = follow(stream, follower, timeout=args.timeout, on_change=on_change)
    finally:
        if stream is not None:
            stream.close()
    outcomes = list(follower.outcomes.values())
    if args.json:
        out_json(
            {
                **launched,
                "finished": finished,
                "entities": {o.entity: _outcome_json(o) for o in outcomes},
            }
        )
    if not finished:
        waiting = ", ".join(o.entity for o in outcomes if not o.done)
        return fail(f"gave up waiting after {args.timeout:.0f} s for: {waiting}", EXIT_FAILED)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        if not args.json:
            out(f"sync of {args.integration} failed: {', '.join(o.entity for o in failed)}")
        return EXIT_FAILED
    if not args.json:
        out(f"sync of {args.integration} finished")
    return EXIT_OK


def _print_launched(integration_id: str, launched: dict[str, Any]) -> None:
    if launched["run_ids"]:
        out(f"{integration_id}: Dagster runs started: {', '.join(launched['run_ids'])}")
    if launched.get("request_id") is not None:
        out(
            f"{integration_id}: Dagster's webserver did not answer; request "
            f"{launched['request_id']} waits for the daemon's request sensor"
        )


def _print_progress(o: EntityOutcome) -> None:
    if o.status == "running":
        if o.processed is None:
            out(f"  {o.entity}: started")
        else:
            total = f" of {o.total}" if o.total is not None else ""
            out(f"  {o.entity}: {o.processed}{total} rows read")
    elif o.ok:
        rows = ", ".join(f"{k} {v}" for k, v in o.counts.items() if v)
        took = f" in {o.duration_s:.1f} s" if o.duration_s is not None else ""
        out(f"  {o.entity}: {o.status}{took}" + (f" ({rows})" if rows else ""))
    elif o.done:
        out(f"  {o.entity}: {o.status}: {o.error}")


def _outcome_json(o: EntityOutcome) -> dict[str, Any]:
    return {
        "status": o.status,
        "run_id": o.run_id,
        "sync_log_id": o.sync_log_id,
        "duration_s": o.duration_s,
        "counts": o.counts,
        "error": o.error,
    }


# ----- status --------------------------------------------------------------------------------


def status(client: SidecarClient, args: argparse.Namespace) -> int:
    """Every integration: last sync per entity, breaker, failure streak, waiting requests."""
    integrations = client.request("GET", "/integrations")["data"]
    healths = [client.for_integration("GET", i["id"], "/health") for i in integrations]
    if args.json:
        out_json(healths)
        return EXIT_OK
    if not integrations:
        out("no integrations yet: add one with `tradeos integrations add`")
    for integration, health in zip(integrations, healths, strict=True):
        out(f"{integration['id']} ({integration['name']}): {health['status']}")
        _print_health(health)
        out()
    return EXIT_OK


def _print_health(health: dict[str, Any]) -> None:
    circuit = health.get("circuit") or {}
    out(
        f"  breaker {circuit.get('state', '-')}, failure streak {health['error_streak']}, "
        f"enabled {'yes' if health['enabled'] else 'no'}"
    )
    rows = []
    for entity, e in sorted(health["entities"].items()):
        last = e.get("last_sync") or {}
        rows.append(
            (
                entity,
                last.get("status"),
                when(last.get("finished_at") or last.get("started_at")),
                when(e.get("last_success_at")),
                e["error_streak"],
                "yes" if e.get("waiting") else "no",
                last.get("error") or "",
            )
        )
    if rows:
        table(["  ENTITY", "LAST", "AT", "LAST SUCCESS", "STREAK", "QUEUED", "ERROR"], rows)
    else:
        out("  never synced")


# ----- logs ----------------------------------------------------------------------------------

PAGE = 200


def logs(client: SidecarClient, args: argparse.Namespace) -> int:
    """The integration's syncs (or, with ``--requests``, its HTTP calls to 1C), newest first."""
    since = parse_since(args.since) if args.since else None
    if args.limit < 1:
        raise ValueError(f"--limit {args.limit}: must be 1 or more")
    client.for_integration("GET", args.integration)  # unknown id: exit 2 with the valid ones
    if args.requests:
        path = f"/integrations/{quote(args.integration, safe='')}/logs"
        params: dict[str, Any] = {"errors_only": args.failed}
        time_field = "at"
    else:
        path = "/sync-logs"
        params = {"integration_id": args.integration}
        if args.failed:
            params["status"] = "failed"
        if args.entity:
            params["entity"] = args.entity
        time_field = "started_at"
    rows = _read_pages(client, path, params, args.limit, since, time_field)
    if args.json:
        out_json(rows)
        return EXIT_OK
    if not rows:
        out("nothing logged" + (f" since {since.isoformat(timespec='seconds')}" if since else ""))
    elif args.requests:
        table(
            ["AT", "METHOD", "STATUS", "MS", "TRY", "PATH", "ERROR"],
            [
                (
                    when(r["at"]),
                    r["method"],
                    r["status_code"],
                    f"{r['duration_ms']:.0f}",
                    r["attempt"],
                    r["path"],
                    r["error"] or "",
                )
                for r in rows
            ],
        )
    else:
        table(
            ["ID", "STARTED", "ENTITY", "STATUS", "SECONDS", "ROWS", "ERROR"],
            [
                (
                    r["id"],
                    when(r["started_at"]),
                    r["entity"],
                    r["status"],
                    f"{r['duration_ms'] / 1000:.1f}" if r["duration_ms"] is not None else None,
                    f"{r['fetched']} read, {r['created']}+ {r['updated']}~ {r['rejected']}!",
                    r["error"] or "",
                )
                for r in rows
            ],
        )
    return EXIT_OK


def _read_pages(
    client: SidecarClient,
    path: str,
    params: dict[str, Any],
    limit: int,
    since: datetime | None,
    time_field: str,
) -> list[dict[str, Any]]:
    """Newest-first pages until ``limit`` rows or a row older than ``since``."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(rows) < limit:
        query = {**params, "limit": min(PAGE, limit - len(rows))}
        if cursor:
            query["cursor"] = cursor
        page = client.request("GET", path, params=query)
        for row in page["data"]:
            if since is not None and datetime.fromisoformat(row[time_field]) < since:
                return rows
            rows.append(row)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return rows


# ----- history and restore -------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def history(client: SidecarClient, args: argparse.Namespace) -> int:
    """Which sync changed which field of a product from what to what, oldest first."""
    body = client.for_integration(
        "GET", args.integration, f"/products/{quote(args.onec_id, safe='')}/history"
    )
    if args.json:
        out_json(body)
        return EXIT_OK
    values = body["values"]
    out(f"{body['onec_id']}  {values.get('code') or '-'}  {values.get('name')}")
    rows = []
    for entry in body["data"]:
        head = (entry["sync_version"], when(entry["changed_at"]), entry["change"])
        if not entry["changes"]:
            rows.append((*head, "", "", ""))
        for n, change in enumerate(entry["changes"]):
            rows.append(
                (
                    *(head if n == 0 else ("", "", "")),
                    change["field"],
                    _value(change["from"]),
                    "→ " + _value(change["to"]),
                )
            )
    table(["VERSION", "AT", "CHANGE", "FIELD", "FROM", "TO"], rows)
    return EXIT_OK


def restore(client: SidecarClient, args: argparse.Namespace) -> int:
    """Show (default) or apply the restore of every product to a sync version."""
    body = client.for_integration(
        "POST",
        args.integration,
        "/restore",
        json={"to_version": args.to_version, "dry_run": not args.apply},
    )
    if args.json:
        out_json(body)
        return EXIT_OK
    verb = "restored" if body["applied"] else "would restore"
    out(
        f"{args.integration}: {verb} {body['changed']} products to sync version "
        f"{body['to_version']} ({body['unchanged']} already as then, {body['created_after']} "
        f"created later left as they are)"
    )
    for product in body["products"]:
        changes = "; ".join(
            f"{c['field']} {_value(c['from'])} → {_value(c['to'])}" for c in product["changes"]
        )
        out(f"  {product['code'] or product['onec_id']}  {product['name']}: {changes}")
    if body["truncated"]:
        out(f"  … and {body['changed'] - len(body['products'])} more")
    if body["applied"]:
        out(f"new sync version {body['sync_version']} (sync log {body['sync_log_id']})")
    elif body["changed"]:
        out("nothing was changed; run again with --apply to restore")
    return EXIT_OK


# ----- the parser ----------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help="the sidecar, e.g. https://sync.example.ru (default: $TRADEOS_API_URL or "
        "http://127.0.0.1:8000)",
    )
    common.add_argument(
        "--token",
        help="API token (default: $TRADEOS_TOKEN, $TRADEOS_ADMIN_TOKEN or the dev "
        "stack's .tradeos/admin.token)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _bind(parser: argparse.ArgumentParser, command: Command) -> None:
    parser.set_defaults(func=lambda args: run_command(command, args))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``integrations``, ``sync``, ``status`` and ``logs`` to the ``tradeos`` parser."""
    common = _common()

    integrations = sub.add_parser("integrations", help="list, show, add, test, enable, disable")
    actions = integrations.add_subparsers(dest="action", required=True, metavar="ACTION")
    _bind(actions.add_parser("list", parents=[common], help="every integration"), integrations_list)
    for name, command, text in (
        ("show", integrations_show, "settings and health of one integration"),
        ("test", integrations_test, "ask 1C's /hs/api/health (exit 1 when it fails)"),
        ("enable", _switch(True), "let schedules, sensors and webhooks sync it"),
        ("disable", _switch(False), "stop scheduled and sensor-driven syncs"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("integration", metavar="INTEGRATION")
        _bind(action, command)

    add = actions.add_parser("add", parents=[common], help="add a 1C infobase")
    add.add_argument("--name", required=True, help="a name people read, e.g. «Основная база»")
    add.add_argument("--base-url", required=True, help="the 1C publication, e.g. http://1c/trade")
    add.add_argument("--api-key", help="X-API-Key (- reads it from standard input)")
    add.add_argument("--username", help="Basic auth user (UTF-8, Cyrillic works)")
    add.add_argument("--password", default="", help="Basic auth password (- reads standard input)")
    add.add_argument("--id", help="the slug (default: transliterated from --name)")
    add.add_argument("--conflict-policy", choices=("onec_wins", "tradeos_wins", "manual"))
    add.add_argument("--timezone", help="IANA time zone of the 1C (default Europe/Moscow)")
    add.add_argument("--page-size", type=int)
    add.add_argument("--timeout-seconds", type=float)
    add.add_argument("--disabled", action="store_true", help="create it switched off")
    _bind(add, integrations_add)

    sync_parser = sub.add_parser(
        "sync", parents=[common], help="sync an integration now (--wait follows it)"
    )
    sync_parser.add_argument("integration", metavar="INTEGRATION")
    sync_parser.add_argument(
        "--entity", action="append", choices=ENTITIES, help="repeatable; default: all three"
    )
    sync_parser.add_argument("--full", action="store_true", help="a full pass, not incremental")
    sync_parser.add_argument(
        "--wait", action="store_true", help="follow the runs; exit 1 if a sync fails"
    )
    sync_parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 1; default 3600)",
    )
    _bind(sync_parser, sync)

    _bind(
        sub.add_parser(
            "status", parents=[common], help="every integration: last syncs, breaker, streak"
        ),
        status,
    )

    logs_parser = sub.add_parser(
        "logs", parents=[common], help="an integration's syncs, newest first"
    )
    logs_parser.add_argument("integration", metavar="INTEGRATION")
    logs_parser.add_argument("--failed", action="store_true", help="only failed ones")
    logs_parser.add_argument("--since", help="30m, 24h, 7d or an ISO date-time")
    logs_parser.add_argument("--entity", choices=LOGGED_ENTITIES)
    logs_parser.add_argument(
        "--requests", action="store_true", help="the HTTP calls to 1C instead of the syncs"
    )
    logs_parser.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    _bind(logs_parser, logs)

    history_parser = sub.add_parser(
        "history", parents=[common], help="which sync changed which field of a product"
    )
    history_parser.add_argument("integration", metavar="INTEGRATION")
    history_parser.add_argument("onec_id", metavar="ONEC_ID", help="the product's 1C id (UUID)")
    _bind(history_parser, history)

    restore_parser = sub.add_parser(
        "restore",
        parents=[common],
        help="put every product back to a sync version (shows what changes unless --apply)",
    )
    restore_parser.add_argument("integration", metavar="INTEGRATION")
    restore_parser.add_argument("--to-version", type=int, required=True, metavar="VERSION")
    restore_parser.add_argument(
        "--apply", action="store_true", help="restore (default: only show what would change)"
    )
    _bind(restore_parser, restore)
