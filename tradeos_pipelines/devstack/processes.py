"""Child processes of the dev stack: started in their own process groups, stopped with escalation.

Why process groups: the Dagster webserver and daemon start processes of their own (the code
server, run workers), and ``dg dev``-style children have been seen to ignore SIGTERM for 25 s.
Each child therefore leads its own session; stopping sends SIGTERM to the whole group, waits a
few seconds, then SIGKILLs whatever is left. On Linux the supervisor also becomes a "child
subreaper", so a grandchild that leaves its group (or whose parent died) is re-parented to us
and still found and stopped: nothing the stack started outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class ChildProcess:
    """One long-running service of the stack (emulator, sidecar, Dagster webserver or daemon)."""

    name: str
    command: list[str]
    log_path: Path
    # Returns True once the service answers (HTTP health, a port, a GraphQL check).
    health: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    healthy: bool = False

    @property
    def pid(self) -> int:
        """Process id (and process-group id) of the started child."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    def exited(self) -> int | None:
        """The exit code if the child has ended, else None."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log, for the message when it dies."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.rstrip().splitlines()[-lines:])


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux), so a grandchild whose parent died is still ours."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the supervisor is SIGKILLed, the child gets
    # SIGTERM from the kernel instead of living on.
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_child(child: ChildProcess, env: dict[str, str], cwd: Path) -> None:
    """Start ``child`` as the leader of a new session, output appended to its log file."""
    child.log_path.parent.mkdir(parents=True, exist_ok=True)
    # Service logs may quote connection details and 1C answers: the owner only.
    child.log_path.touch(mode=0o600)
    child.log_path.chmod(0o600)
    with child.log_path.open("ab") as log:
        log.write(
            f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(child.command)}\n".encode()
        )
        log.flush()
        child.process = subprocess.Popen(
            child.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def descendants(exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Every live descendant of this process, without the trees rooted at ``exclude``."""
    skip: set[int] = set()
    for pid in exclude:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            skip.add(pid)
            skip.update(p.pid for p in root.children(recursive=True))
    found = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid not in skip:
            found.append(proc)
    return found


def stop_children(
    children: list[ChildProcess],
    *,
    grace_seconds: float,
    kill_wait_seconds: float = 1.5,
    keep: Iterable[int] = (),
) -> list[str]:
    """SIGTERM every child's group, wait up to ``grace_seconds``, then SIGKILL what remains.

    Descendants that left their group are included (found through the subreaper); the trees
    rooted at ``keep`` (the embedded servers, stopped afterwards) are left alone. Returns the
    names of children that had to be killed. Takes at most about
    ``grace_seconds + kill_wait_seconds``.
    """
    keep = list(keep)
    started = [c for c in children if c.process is not None]
    _signal_all(started, keep, signal.SIGTERM)
    if _wait_all_gone(started, keep, grace_seconds):
        return []
    killed = [c.name for c in started if c.exited() is None]
    _signal_all(started, keep, signal.SIGKILL)
    _wait_all_gone(started, keep, kill_wait_seconds)
    return killed


def _wait_all_gone(started: list[ChildProcess], keep: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        reap_adopted(started)
        if all(c.exited() is not None for c in started) and not _anything_left(keep):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def kill_remaining_descendants() -> None:
    """Last sweep: SIGKILL and reap anything this process still has below it."""
    rest = descendants()
    for proc in rest:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(rest, timeout=3)
    reap_adopted([])


def reap_adopted(children: list[ChildProcess]) -> None:
    """Collect exit statuses of adopted orphans (never of our own Popen children)."""
    own = {c.process.pid for c in children if c.process is not None}
    for proc in psutil.Process().children():
        if proc.pid in own:
            continue
        with contextlib.suppress(ChildProcessError, psutil.Error):
            if proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(proc.pid, os.WNOHANG)


def _signal_all(started: list[ChildProcess], keep: list[int], sig: int) -> None:
    # A group is signalled only while its leader is unreaped: then its id cannot have been
    # reused. Members left behind by a dead leader are reached one by one below.
    for child in reversed(started):
        if child.exited() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, sig)
    for proc in descendants(exclude=keep):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def _anything_left(keep: list[int]) -> bool:
    return any(_running(p) for p in descendants(exclude=keep))


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
