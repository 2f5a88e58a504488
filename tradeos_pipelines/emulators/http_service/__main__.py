"""Command line: ``python -m tradeos_pipelines.emulators.http_service --items 100000``."""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from tradeos_pipelines.emulators.http_service.app import EmulatorApp
from tradeos_pipelines.emulators.http_service.infobase import EmulatorOptions, Infobase
from tradeos_pipelines.emulators.http_service.server import PUBLICATION


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The emulator's options; ``--basic`` takes ``user:password`` (Cyrillic allowed)."""
    parser = argparse.ArgumentParser(
        prog="python -m tradeos_pipelines.emulators.http_service",
        description="A 1C:Управление торговлей HTTP service (/hs/api) emulator for development.",
    )
    parser.add_argument("--items", type=int, default=5000, help="goods in the catalogue")
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="same seed, same catalogue")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--api-key", help="accept X-API-Key: KEY")
    parser.add_argument("--basic", help="accept Basic auth for USER:PASSWORD")
    parser.add_argument("--timezone", default="Europe/Moscow", help="the 1C server's time zone")
    parser.add_argument(
        "--control-key", help="switch /_control/ on, for callers sending X-Control-Key: KEY"
    )
    parser.add_argument(
        "--quirks",
        action="store_true",
        help="answer like real 1C: BOM, numbers as '1 234,50', zero GUIDs, empty dates",
    )
    args = parser.parse_args(argv)
    if args.items < 0 or args.warehouses < 1:
        parser.error("--items must be >= 0 and --warehouses >= 1")
    if args.basic is not None and ":" not in args.basic:
        parser.error("--basic takes USER:PASSWORD")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the catalogue, bind the port, print the URL, serve until interrupted."""
    args = parse_args(argv)
    basic = tuple(args.basic.split(":", 1)) if args.basic else None
    options = EmulatorOptions(
        items=args.items,
        warehouses=args.warehouses,
        seed=args.seed,
        quirks=args.quirks,
        timezone=args.timezone,
        api_key=args.api_key,
        basic=basic,  # type: ignore[arg-type]
        control_key=args.control_key,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)  # noqa: T201
        return 2
    # Listen before the URL is printed: connections wait in the backlog until uvicorn accepts
    # them. A socket that is only bound refuses them, and whoever read the URL (tests,
    # benchmarks, scripts) could connect before uvicorn starts listening.
    sock.listen(2048)
    infobase = Infobase(options)
    host, port = sock.getsockname()[:2]
    print(f"1C emulator listening on http://{host}:{port}{PUBLICATION}", flush=True)  # noqa: T201
    config = uvicorn.Config(
        EmulatorApp(infobase), log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
