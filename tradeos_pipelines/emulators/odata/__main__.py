"""Command line: ``python -m tradeos_pipelines.emulators.odata --items 100000 --port 8081``."""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from tradeos_pipelines.emulators.odata.app import SERVICE, ODataEmulatorApp
from tradeos_pipelines.emulators.odata.infobase import Infobase, ODataEmulatorOptions


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, ODataEmulatorOptions]:
    """The arguments and the options they make; ``--basic`` takes ``USER:PASSWORD``."""
    parser = argparse.ArgumentParser(
        prog="python -m tradeos_pipelines.emulators.odata",
        description="An emulator of 1C:Управление торговлей 11.5's standard OData interface.",
    )
    parser.add_argument("--items", type=int, default=1000, help="goods in the catalogue")
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="same seed, same infobase")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--publication", default="/trade", help="the base's URL path")
    parser.add_argument("--basic", help="accept Basic auth for USER:PASSWORD (UTF-8)")
    parser.add_argument("--control-key", help="require X-Control-Key on /_control/")
    parser.add_argument("--timezone", default="Europe/Moscow", help="the 1C server's time zone")
    parser.add_argument(
        "--price-register",
        default="ЦеныНоменклатуры25",
        help="ЦеныНоменклатуры25 (УТ 11.5) or ЦеныНоменклатуры (УТ 11.4)",
    )
    parser.add_argument("--publish", help="comma-separated objects to publish (default: all)")
    parser.add_argument("--balance-delay", type=float, default=0.0, help="seconds Balance takes")
    parser.add_argument("--web-server", default="apache", choices=("apache", "iis"))
    parser.add_argument("--max-query-length", type=int, help="longest query string let through")
    args = parser.parse_args(argv)
    if args.basic is not None and ":" not in args.basic:
        parser.error("--basic takes USER:PASSWORD")
    username, _, password = args.basic.partition(":") if args.basic else (None, "", "")
    try:
        options = ODataEmulatorOptions(
            items=args.items,
            warehouses=args.warehouses,
            seed=args.seed,
            publication=args.publication,
            username=username,
            password=password,
            control_key=args.control_key,
            timezone=args.timezone,
            price_register=args.price_register,
            published=tuple(args.publish.split(",")) if args.publish else None,
            balance_delay=args.balance_delay,
            web_server=args.web_server,
            max_query_length=args.max_query_length,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args, options


def main(argv: list[str] | None = None) -> int:
    """Build the infobase, listen, print the URL, serve until interrupted."""
    args, options = parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)  # noqa: T201
        return 2
    # Listen before printing the URL: whoever reads it may connect at once, and a socket
    # that is only bound refuses connections until uvicorn starts.
    sock.listen(2048)
    infobase = Infobase(options)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}{options.publication}{SERVICE}"
    print(f"1C OData emulator listening on {url}", flush=True)  # noqa: T201
    config = uvicorn.Config(
        ODataEmulatorApp(infobase),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,  # the app sends the emulated web server's own
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
