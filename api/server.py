"""The sidecar process: two servers in one event loop sharing one :class:`Runtime`.

Port ``TRADEOS_API_PORT`` (8000, uvicorn) serves REST, ``/ws`` and the dashboard; port
``TRADEOS_WS_PORT`` (8001) serves ``/ws`` only, with the ``websockets`` library directly
(:mod:`api.live.ws_server`, built for fan-out). Both share the Redis reader and the
connection manager, so ``get_stats`` counts every client of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import logging
import re
import signal
from collections.abc import Callable, Iterator

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.core.http_limits import KEEP_ALIVE_SECONDS, MAX_HEADER_BYTES, GuardedHttpToolsProtocol
from api.core.runtime import Runtime
from api.live.ws_server import WebSocketServer
from api.main import create_app
from tradeos_pipelines.core.settings import get_settings

_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """uvicorn logs WebSocket paths with their query; the ``token`` parameter is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1***", record.msg)
        return True


def log_config() -> dict:
    """uvicorn's logging config with token redaction on its loggers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": "api.server.RedactTokens"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config


class _SharedSignalsServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`.

    Each ``uvicorn.Server`` installs its own SIGINT/SIGTERM handlers, so with two servers the
    second replaces the first's and only one would ever stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_servers(
    host: str, api_port: int, ws_port: int, runtime: Runtime
) -> tuple[uvicorn.Server, WebSocketServer]:
    """The REST server and the WebSocket server (not started)."""
    config = uvicorn.Config(
        create_app(runtime=runtime),
        host=host,
        port=api_port,
        log_config=log_config(),
        # Header deadline and size cap (api.core.http_limits); the h11 limit applies only if
        # someone swaps the protocol back to h11.
        http=GuardedHttpToolsProtocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ws_max_size=1 << 20,
        # Compressing each frame once per client is the cost of fan-out; events are small.
        ws_per_message_deflate=False,
    )
    return _SharedSignalsServer(config), WebSocketServer(host, ws_port, runtime)


async def serve(host: str, api_port: int, ws_port: int) -> None:
    """Run both servers until interrupted."""
    runtime = Runtime()
    await runtime.start()
    try:
        api, ws = build_servers(host, api_port, ws_port, runtime)
        # Dagster, SQLAlchemy and pydantic leave ~200k long-lived objects behind at start-up;
        # every full collection walked them all (~0.1 s each), which showed as request-latency
        # spikes. Frozen objects are never scanned again; what requests allocate still is.
        gc.collect()
        gc.freeze()

        def stop() -> None:
            for server in (api, ws):
                if server.should_exit:  # a second Ctrl+C: stop without waiting for clients
                    server.force_exit = True
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(api.serve(), ws.serve())
    finally:
        await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point of ``python -m api``."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port, help="REST port")
    parser.add_argument("--ws-port", type=int, default=settings.ws_port, help="WebSocket port")
    args = parser.parse_args(argv)
    # uvloop (installed with uvicorn[standard]) makes every socket write and wake-up cheaper.
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(args.host, args.port, args.ws_port))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
