"""``tradeos dev``: the whole local stack in one command, stopped cleanly by Ctrl-C or SIGTERM.

Order of work (each step idempotent, see :mod:`.bootstrap`):

1. check that every port the stack needs is free (before anything starts);
2. PostgreSQL and Redis: the configured servers, or embedded ones under ``TRADEOS_DATA_DIR``;
3. the Dagster storage database, DAGSTER_HOME, the secret key and admin token, migrations;
4. the services that exist in this checkout: the 1C emulator (plus the ``demo-1c``
   integration), the sidecar (REST + WebSocket), the Dagster webserver and daemon;
5. wait until each answers its health check, print the URLs, then watch: a service that dies
   stops the whole stack with a non-zero exit.

Shutdown stops the services (SIGTERM to each process group, SIGKILL after a grace period),
then the embedded servers, within :data:`SHUTDOWN_BUDGET_SECONDS`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from tradeos_pipelines.core.settings import PROJECT_ROOT, Settings
from tradeos_pipelines.devstack import processes
from tradeos_pipelines.devstack.bootstrap import (
    DEMO_API_KEY,
    DEMO_INTEGRATION_ID,
    DEMO_ODATA_INTEGRATION_ID,
    DEMO_ODATA_PASSWORD,
    DEMO_ODATA_USER,
    EMBEDDED_DATABASE,
    DataDir,
    StackError,
    admin_token,
    check_database,
    check_redis,
    dagster_database_url,
    dev_secret_key,
    ensure_database,
    ensure_demo_integration,
    ensure_demo_odata_integration,
    prepare_dagster_home,
    write_stack_env,
)
from tradeos_pipelines.devstack.embedded import (
    EmbeddedServer,
    start_postgres_server,
    start_redis_server,
)
from tradeos_pipelines.devstack.processes import ChildProcess

# SIGTERM grace for the services; then SIGKILL, then the embedded servers in what is left.
SERVICE_GRACE_SECONDS = 5.5
SHUTDOWN_BUDGET_SECONDS = 10.0
DEFAULT_START_TIMEOUT_SECONDS = 300.0
EMULATOR_ITEMS = 5000
EMULATOR_WAREHOUSES = 3

Say = Callable[[str], None]


class ShutdownRequested(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP (BaseException: nothing swallows it)."""


class ServiceDied(StackError):
    """A service of the stack exited while it should be running."""


@dataclass(frozen=True)
class PortUse:
    """A port the stack will listen on, and the setting that chooses it."""

    port: int
    setting: str
    service: str


@dataclass
class Stack:
    """What one ``tradeos dev`` run started, for the banner and for shutdown."""

    settings: Settings
    data: DataDir
    servers: list[EmbeddedServer] = field(default_factory=list)
    children: list[ChildProcess] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    token_from_env: bool = False


# --- what exists in this checkout ------------------------------------------------------------


def emulator_available() -> bool:
    """The bundled 1C emulator is part of this checkout (helper A's package)."""
    return (PROJECT_ROOT / "tradeos_pipelines/emulators/http_service/__main__.py").exists()


def odata_emulator_available() -> bool:
    """The bundled OData emulator (a stock 1C's standard interface) is in this checkout."""
    return (PROJECT_ROOT / "tradeos_pipelines/emulators/odata/__main__.py").exists()


def sidecar_available() -> bool:
    """The FastAPI sidecar (``python -m api``) is part of this checkout."""
    return (PROJECT_ROOT / "api/__main__.py").exists()


def dagster_available() -> bool:
    """The Dagster workspace is part of this checkout."""
    return (PROJECT_ROOT / "workspace.yaml").exists()


def planned_ports(settings: Settings) -> list[PortUse]:
    """Every port this run will listen on (only for the services that exist)."""
    ports = []
    if sidecar_available():
        ports.append(PortUse(settings.api_port, "TRADEOS_API_PORT", "sidecar REST API"))
        ports.append(PortUse(settings.ws_port, "TRADEOS_WS_PORT", "sidecar WebSocket"))
    if dagster_available():
        ports.append(PortUse(settings.dagster_port, "TRADEOS_DAGSTER_PORT", "Dagster webserver"))
    if emulator_available():
        ports.append(PortUse(settings.emulator_port, "TRADEOS_EMULATOR_PORT", "1C emulator"))
    if odata_emulator_available():
        ports.append(
            PortUse(
                settings.odata_emulator_port, "TRADEOS_ODATA_EMULATOR_PORT", "1C OData emulator"
            )
        )
    return ports


def check_ports(settings: Settings, ports: list[PortUse]) -> None:
    """Raise :class:`StackError` naming the first port that is taken or used twice."""
    seen: dict[int, PortUse] = {}
    for use in ports:
        if use.port in seen:
            other = seen[use.port]
            raise StackError(
                f"port {use.port} is set for both {other.setting} and {use.setting}; "
                "give each its own port"
            )
        seen[use.port] = use
        hosts = {"127.0.0.1"}
        if use.setting in ("TRADEOS_API_PORT", "TRADEOS_WS_PORT"):
            hosts.add(settings.api_host)
        for host in hosts:
            if not _port_free(host, use.port):
                raise StackError(
                    f"port {use.port} ({use.setting}, {use.service}) is already in use on "
                    f"{host}: stop what uses it or set {use.setting} to a free port"
                )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port in TIME_WAIT from a previous run is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


# --- health checks ---------------------------------------------------------------------------


def http_answers(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    """A check that passes once ``url`` answers without a server error."""

    def check() -> bool:
        try:
            response = httpx.get(url, headers=headers, timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    return check


def dagster_daemon_healthy(graphql_url: str) -> Callable[[], bool]:
    """A check that passes once every required Dagster daemon has a fresh heartbeat."""
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"

    def check() -> bool:
        try:
            response = httpx.post(graphql_url, json={"query": query}, timeout=3.0)
            statuses = response.json()["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        required = [s for s in statuses if s["required"]]
        return bool(required) and all(s["healthy"] for s in required)

    return check


# --- running ---------------------------------------------------------------------------------


def run_dev_stack(
    settings: Settings, say: Say, *, start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS
) -> int:
    """Run the stack until a signal (exit 0) or a failing service (exit 1)."""
    check_ports(settings, planned_ports(settings))
    stack = Stack(settings=settings, data=DataDir(Path(settings.data_dir).resolve()))
    previous = _install_signal_handlers()
    processes.become_subreaper()
    try:
        _prepare(stack, say)
        _start_services(stack, say)
        _wait_until_healthy(stack, say, start_timeout)
        _print_banner(stack, say)
        _watch(stack)
    except ShutdownRequested:
        say("tradeos dev: stopping …")
        return 0
    except ServiceDied as exc:
        say(f"tradeos dev: {exc}")
        return 1
    finally:
        _ignore_signals()
        started = time.monotonic()
        _shutdown(stack, say)
        say(f"tradeos dev: stopped in {time.monotonic() - started:.1f} s")
        _restore_signal_handlers(previous)
    return 0


def _prepare(stack: Stack, say: Say) -> None:
    settings, data = stack.settings, stack.data
    data.create()
    database_url = settings.database_url
    redis_url = settings.redis_url
    # Configured servers are checked before any embedded one starts: fail fast and clearly.
    if database_url is not None:
        check_database(database_url)
    if redis_url is not None:
        check_redis(redis_url)
    if database_url is None:
        say(f"starting embedded PostgreSQL ({data.postgres})")
        server = start_postgres_server(data.postgres)
        stack.servers.append(server)
        database_url = ensure_database(server.url, EMBEDDED_DATABASE)
    if redis_url is None:
        say(f"starting embedded Redis ({data.redis})")
        server = start_redis_server(data.redis)
        stack.servers.append(server)
        redis_url = server.url
    secret_key = dev_secret_key(settings, data)
    stack.token, stack.token_from_env = admin_token(settings, data)

    from tradeos_pipelines.storage.migrate import upgrade_to_head

    say("applying database migrations")
    upgrade_to_head(database_url)

    env = dict(os.environ)
    env.update(
        {
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": redis_url,
            "TRADEOS_SECRET_KEY": secret_key,
            "TRADEOS_ADMIN_TOKEN": stack.token,
            "TRADEOS_DATA_DIR": str(data.root),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if dagster_available():
        env["TRADEOS_DAGSTER_DATABASE_URL"] = dagster_database_url(database_url)
        env["DAGSTER_HOME"] = str(prepare_dagster_home(data))
        env.setdefault("TRADEOS_DAGSTER_URL", f"http://127.0.0.1:{settings.dagster_port}")
    stack.env = env
    # `tradeos token create|revoke` in another terminal finds this stack's servers here.
    write_stack_env(data, env)

    if emulator_available():
        ensure_demo_integration(database_url, _emulator_base_url(settings), secret_key)
    if odata_emulator_available():
        ensure_demo_odata_integration(database_url, _odata_base_url(settings), secret_key)


def _emulator_base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.emulator_port}/trade"


def _odata_base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.odata_emulator_port}/trade"


def _start_services(stack: Stack, say: Say) -> None:
    settings, logs = stack.settings, stack.data.logs
    python = sys.executable
    scripts = Path(python).parent
    local = "http://127.0.0.1"

    if emulator_available():
        stack.children.append(
            ChildProcess(
                "1C emulator",
                [
                    python,
                    "-m",
                    "tradeos_pipelines.emulators.http_service",
                    "--items",
                    str(EMULATOR_ITEMS),
                    "--warehouses",
                    str(EMULATOR_WAREHOUSES),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(settings.emulator_port),
                    "--api-key",
                    DEMO_API_KEY,
                ],
                logs / "emulator.log",
                http_answers(
                    _emulator_base_url(settings) + "/hs/api/health", {"X-API-Key": DEMO_API_KEY}
                ),
            )
        )
    else:
        stack.notes.append(
            "1C emulator: not in this checkout yet (tradeos_pipelines/emulators/http_service), "
            "skipped"
        )

    if odata_emulator_available():
        stack.children.append(
            ChildProcess(
                "1C OData emulator",
                [
                    python,
                    "-m",
                    "tradeos_pipelines.emulators.odata",
                    "--items",
                    str(EMULATOR_ITEMS),
                    "--warehouses",
                    str(EMULATOR_WAREHOUSES),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(settings.odata_emulator_port),
                    "--basic",
                    f"{DEMO_ODATA_USER}:{DEMO_ODATA_PASSWORD}",
                ],
                logs / "odata-emulator.log",
                # Any answer will do (401 without credentials): the emulator is up.
                http_answers(_odata_base_url(settings) + "/odata/standard.odata/"),
            )
        )

    if sidecar_available():
        rest_check = http_answers(f"{local}:{settings.api_port}/api/v1/health")
        ws_port = settings.ws_port
        stack.children.append(
            ChildProcess(
                "sidecar",
                [python, "-m", "api"],
                logs / "sidecar.log",
                lambda: rest_check() and _tcp_answers(ws_port),
            )
        )
    else:
        stack.notes.append("sidecar: not in this checkout yet (api/__main__.py), skipped")

    if dagster_available():
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        dagster_url = f"{local}:{settings.dagster_port}"
        stack.children.append(
            ChildProcess(
                "dagster-webserver",
                [
                    # dagster-webserver behind the TradeOS guard (Host, Origin, GET mutations).
                    python,
                    "-m",
                    "tradeos_pipelines.dagster_ui",
                    "-w",
                    workspace,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(settings.dagster_port),
                ],
                logs / "dagster-webserver.log",
                http_answers(f"{dagster_url}/server_info"),
            )
        )
        stack.children.append(
            ChildProcess(
                "dagster-daemon",
                [str(scripts / "dagster-daemon"), "run", "-w", workspace],
                logs / "dagster-daemon.log",
                dagster_daemon_healthy(f"{dagster_url}/graphql"),
            )
        )
    else:
        stack.notes.append("Dagster: no workspace.yaml in this checkout, skipped")

    for child in stack.children:
        say(f"starting {child.name} (log: {child.log_path})")
        processes.start_child(child, stack.env, PROJECT_ROOT)


def _tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _check_alive(stack: Stack) -> None:
    for child in stack.children:
        code = child.exited()
        if code is not None:
            raise ServiceDied(
                f"{child.name} exited unexpectedly (code {code}); stopping the stack. "
                f"Last lines of {child.log_path}:\n{child.log_tail()}"
            )


def _wait_until_healthy(stack: Stack, say: Say, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(stack)
        waiting = [c for c in stack.children if not c.healthy]
        for child in waiting:
            if child.health():
                child.healthy = True
                say(f"{child.name} is up")
        if all(c.healthy for c in stack.children):
            return
        if time.monotonic() > deadline:
            names = ", ".join(c.name for c in stack.children if not c.healthy)
            raise ServiceDied(
                f"{names} did not answer within {timeout:.0f} s; see the logs in {stack.data.logs}"
            )
        time.sleep(0.5)


def _print_banner(stack: Stack, say: Say) -> None:
    s = stack.settings
    lines = ["", "TradeOS ⇄ 1C sync: the local stack is up", ""]
    if dagster_available():
        lines.append(f"  Dagster UI      http://127.0.0.1:{s.dagster_port}")
    if sidecar_available():
        lines.append(f"  Dashboard       http://127.0.0.1:{s.api_port}/dashboard/")
        lines.append(f"  API docs        http://127.0.0.1:{s.api_port}/docs")
        lines.append(f"  API health      http://127.0.0.1:{s.api_port}/api/v1/health")
        lines.append(f"  WebSocket       ws://127.0.0.1:{s.ws_port}/ws?token=…")
    if emulator_available():
        lines.append(
            f"  1C emulator     {_emulator_base_url(s)}  (X-API-Key: {DEMO_API_KEY}; "
            f"integration {DEMO_INTEGRATION_ID})"
        )
    if odata_emulator_available():
        lines.append(
            f"  1C OData        {_odata_base_url(s)}/odata/standard.odata  "
            f"({DEMO_ODATA_USER} / {DEMO_ODATA_PASSWORD}; integration {DEMO_ODATA_INTEGRATION_ID})"
        )
    if stack.token_from_env:
        lines.append("  Admin token     the value of TRADEOS_ADMIN_TOKEN")
    else:
        lines.append(f"  Admin token     {stack.token}  (kept in {stack.data.admin_token_file})")
    lines.append(f"  Logs            {stack.data.logs}")
    lines.extend(f"  Note: {note}" for note in stack.notes)
    lines.extend(["", "Press Ctrl-C to stop everything.", ""])
    say("\n".join(lines))


def _watch(stack: Stack) -> None:
    while True:
        _check_alive(stack)
        processes.reap_adopted(stack.children)
        time.sleep(0.5)


def _shutdown(stack: Stack, say: Say) -> None:
    # The servers get whatever the services leave of the budget (PostgreSQL's shutdown
    # checkpoint takes a second or two), less a margin for the final sweep.
    deadline = time.monotonic() + SHUTDOWN_BUDGET_SECONDS - 1.0
    server_pids = [s.pid for s in stack.servers]
    killed = processes.stop_children(
        stack.children, grace_seconds=SERVICE_GRACE_SECONDS, kill_wait_seconds=1.0, keep=server_pids
    )
    if killed:
        say(
            f"tradeos dev: killed {', '.join(killed)} (no exit within "
            f"{SERVICE_GRACE_SECONDS:.0f} s of SIGTERM)"
        )
    with contextlib.suppress(OSError):
        stack.data.stack_env_file.unlink()
    for server in stack.servers:
        server.begin_stop()
    for server in stack.servers:
        server.stop(timeout=max(0.5, deadline - time.monotonic()))
    processes.kill_remaining_descendants()


# --- signals ---------------------------------------------------------------------------------

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
Handlers = dict[int, object]


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise ShutdownRequested(signal.Signals(signum).name)


def _install_signal_handlers() -> Handlers:
    previous: Handlers = {}
    for sig in _HANDLED:
        previous[sig] = signal.signal(sig, _raise_shutdown)
    return previous


def _ignore_signals() -> None:
    # A second Ctrl-C must not interrupt the shutdown half-way (that would leave orphans).
    for sig in _HANDLED:
        signal.signal(sig, signal.SIG_IGN)


def _restore_signal_handlers(previous: Handlers) -> None:
    for sig, handler in previous.items():
        with contextlib.suppress(TypeError, ValueError):
            signal.signal(sig, handler)  # type: ignore[arg-type]
