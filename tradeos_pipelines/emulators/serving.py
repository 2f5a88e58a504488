"""Running an emulator, whichever 1C it plays: on a thread of this process or as a child.

Tests run an emulator on a background thread (port 0: a free one); benchmarks run it as a
child process so its work does not share an interpreter with the client being measured. Both
expose ``host``, ``port`` and ``root_url`` and stop on leaving a ``with`` block.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class Running:
    """An emulator that answers on ``root_url`` until :meth:`stop`."""

    host: str
    port: int

    @property
    def root_url(self) -> str:
        """``http://host:port`` (the controls live under it)."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the emulator."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ThreadServer:
    """uvicorn serving ``app`` on a background thread; the port is bound before it starts."""

    def __init__(self, app: Any, *, host: str, port: int, name: str, **config: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port: int = sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
                **config,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name=name
        )
        self._socket = sock
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"the {name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread (slow answers are cut after a second)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class ChildProcess:
    """``python -m module ARGS`` that prints its URL once it listens; ``host`` and ``port``
    are read from that line."""

    def __init__(self, module: str, args: list[str], *, what: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        match = re.search(r"http://([^:/\s]+):(\d+)", line)
        if match is None:
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"the {what} process did not start: {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
