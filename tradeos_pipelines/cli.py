"""The ``tradeos`` command: the local stack, migrations, keys, API tokens, the 1C emulator,
and the operator's commands over the sidecar's API (:mod:`tradeos_pipelines.ops_cli`).

    tradeos dev                      start the whole local stack (Ctrl-C stops it)
    tradeos migrate [--downgrade R]  apply migrations (or undo down to revision R, e.g. base)
    tradeos secret-key               print a new TRADEOS_SECRET_KEY
    tradeos token create NAME [--scope S]  create a sidecar API token (shown once)
    tradeos token list               list tokens (never their secrets)
    tradeos token revoke ID          revoke a token
    tradeos emulator [--protocol odata] [ARGS…]
                                     run the bundled 1C emulator: the HTTP service, or with
                                     --protocol odata the standard OData interface (own --help)
    tradeos integrations list|show|add|test|enable|disable
    tradeos sync INTEGRATION [--entity E] [--full] [--wait]
    tradeos status
    tradeos logs INTEGRATION [--failed] [--since 24h] [--requests]

Exit codes: 0 success, 1 failure (a sync failed), 2 a missing or malformed setting or bad
arguments (an unknown integration or entity), 3 the sidecar did not answer.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from collections.abc import Callable, Sequence

from tradeos_pipelines import ops_cli
from tradeos_pipelines.core.settings import SettingsError, load_settings

EXIT_FAILURE = 1
EXIT_USAGE = 2


def echo(message: str = "") -> None:
    """Write one message to standard output (the CLI's console)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_FAILURE) -> int:
    """Write one error line to standard error and return the exit code."""
    sys.stderr.write(f"tradeos: {message}\n")
    sys.stderr.flush()
    return code


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the local stack and supervise it until Ctrl-C or SIGTERM."""
    from tradeos_pipelines.devstack.bootstrap import StackError
    from tradeos_pipelines.devstack.embedded import EmbeddedServerError
    from tradeos_pipelines.devstack.stack import run_dev_stack

    settings = load_settings()
    try:
        return run_dev_stack(settings, echo, start_timeout=args.start_timeout)
    except (StackError, EmbeddedServerError) as exc:
        return fail(str(exc))


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the migrations to TRADEOS_DATABASE_URL (or undo them)."""
    from alembic import command

    from tradeos_pipelines.storage.migrate import alembic_config

    url = load_settings().require_database_url()
    config = alembic_config(url)
    if args.downgrade:
        command.downgrade(config, args.downgrade)
        echo(f"downgraded to {args.downgrade}")
    else:
        command.upgrade(config, "head")
        echo("database is at the latest migration (head)")
    return 0


def cmd_secret_key(_args: argparse.Namespace) -> int:
    """Print a new Fernet key for TRADEOS_SECRET_KEY."""
    from tradeos_pipelines.core.secrets import new_secret_key

    echo(new_secret_key())
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Create, list or revoke sidecar API tokens."""
    from tradeos_pipelines.storage.tokens import (
        TokenNotFound,
        create_token,
        list_tokens,
        revoke_token,
    )

    url = _token_database_url()
    if args.action == "create":
        try:
            token = create_token(args.name, scopes=args.scope or ["admin"], database_url=url)
        except ValueError as exc:
            return fail(str(exc), EXIT_USAGE)
        echo(token)
        sys.stderr.write("tradeos: token created; it is shown only this once\n")
        return 0
    if args.action == "list":
        echo(f"{'ID':>4}  {'NAME':<30} {'SCOPES':<24} {'CREATED':<20} {'LAST USED':<20} STATUS")
        for info in list_tokens(database_url=url):
            echo(
                f"{info.id:>4}  {info.name:<30} {' '.join(info.scopes):<24} "
                f"{_when(info.created_at):<20} "
                f"{_when(info.last_used_at):<20} "
                f"{'revoked ' + _when(info.revoked_at) if info.revoked_at else 'active'}"
            )
        return 0
    try:
        info = revoke_token(args.id, database_url=url)
    except TokenNotFound as exc:
        return fail(str(exc))
    echo(f"token {info.id} ({info.name}) revoked")
    return 0


def _token_database_url() -> str:
    """TRADEOS_DATABASE_URL, else the running ``tradeos dev`` stack's (its data folder's
    stack.env); its Redis is used too, so a revocation reaches the stack's sidecar."""
    from tradeos_pipelines.core.settings import get_settings
    from tradeos_pipelines.devstack.bootstrap import read_stack_env

    settings = load_settings()
    if settings.database_url:
        return settings.database_url
    stack = read_stack_env(settings.data_dir)
    if "TRADEOS_DATABASE_URL" not in stack:
        return settings.require_database_url()  # the usual "set TRADEOS_DATABASE_URL" error
    for key, value in stack.items():
        os.environ.setdefault(key, value)
    get_settings.cache_clear()
    sys.stderr.write(f"tradeos: using the running dev stack's database ({settings.data_dir})\n")
    return stack["TRADEOS_DATABASE_URL"]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"  # type: ignore[attr-defined]


EMULATORS = {
    "http_service": "tradeos_pipelines.emulators.http_service",
    "odata": "tradeos_pipelines.emulators.odata",
}


def _emulator_protocol(argv: list[str]) -> tuple[str, list[str]]:
    """``--protocol P`` (or ``--protocol=P``) taken out of the emulator's arguments."""
    rest, protocol = [], "http_service"
    items = iter(argv)
    for arg in items:
        if arg == "--protocol":
            protocol = next(items, "")
        elif arg.startswith("--protocol="):
            protocol = arg.partition("=")[2]
        else:
            rest.append(arg)
    return protocol, rest


def cmd_emulator(args: argparse.Namespace) -> int:
    """Run the bundled 1C emulator of ``--protocol`` with the remaining arguments."""
    protocol, rest = _emulator_protocol(args.emulator_args)
    if protocol not in EMULATORS:
        return fail(f"--protocol must be one of {', '.join(EMULATORS)}, got {protocol!r}")
    sys.argv = [f"tradeos emulator --protocol {protocol}", *rest]
    try:
        runpy.run_module(EMULATORS[protocol], run_name="__main__", alter_sys=True)
    except ImportError as exc:
        return fail(f"the 1C emulator is not available in this checkout ({exc})")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tradeos`` command."""
    parser = argparse.ArgumentParser(
        prog="tradeos", description="TradeOS ⇄ 1C sync: local stack, administration, operation."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="start the whole local stack (Ctrl-C stops it)")
    dev.add_argument(
        "--start-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for every service to answer (default 300)",
    )
    dev.set_defaults(func=cmd_dev)

    migrate = sub.add_parser("migrate", help="apply database migrations (TRADEOS_DATABASE_URL)")
    migrate.add_argument(
        "--downgrade", metavar="REVISION", help="undo migrations down to REVISION (e.g. base)"
    )
    migrate.set_defaults(func=cmd_migrate)

    sub.add_parser("secret-key", help="print a new TRADEOS_SECRET_KEY").set_defaults(
        func=cmd_secret_key
    )

    token = sub.add_parser("token", help="sidecar API tokens")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token (shown once)")
    create.add_argument("name")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="admin (default), read (GET routes only) or webhook:<integration id> "
        "(that integration's 1C webhook only); repeat for several",
    )
    actions.add_parser("list", help="list tokens")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    token.set_defaults(func=cmd_token)

    emulator = sub.add_parser(
        "emulator", help="run the bundled 1C emulator", add_help=False, prefix_chars="\0"
    )
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER)
    emulator.set_defaults(func=cmd_emulator)

    ops_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tradeos`` console script."""
    logging.basicConfig(level=logging.WARNING, format="tradeos: %(message)s")
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SettingsError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
