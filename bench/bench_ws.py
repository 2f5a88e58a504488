"""WebSocket relay under load: publish-to-receive latency with many subscribed clients.

One sidecar process (``python -m api``) and ``--clients`` WebSocket clients (default 1,000),
each subscribed to one channel (round-robin over ``--channels``). Events go through the real
path (``RedisEventBus.publish`` → Redis Streams → the sidecar's relay → port 8001) at a steady
``--rate`` for ``--duration`` seconds, with ``time.time()`` at publishing in the event data.

Most clients are :class:`bench._ws_client.RawClient` (handshake done by hand, frames counted
from their headers, only events flagged ``"sample": true`` JSON-decoded, one in
``--sample-every``), so that the clients can read what the sidecar sends; ``--real-clients``
(default 50) are ``websockets`` library clients in their own process, to show that both agree
on latency. Every client's event count is checked against what was published on its channel.

Without ``--rate``/``--channels`` three scenarios run: 7 channels at 1,000 ev/s (~143k frames/s),
1 channel at 100 ev/s (100k frames/s) and 7 channels at 100 ev/s (~14k frames/s).
Reports p50/p95/max, frames/s delivered, dropped clients (1013), sidecar CPU and RSS; writes
``bench/results/ws.json``. Goal: p95 <= 100 ms, every frame delivered, nobody dropped.
Run: ``.venv/bin/python bench/bench_ws.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._sidecar import Stack, cpu_seconds, percentile, rss_mb, sidecar_stack, write_results

CHANNELS = (
    "sync_updates", "product_updates", "stock_updates", "order_updates",
    "integration_status", "alerts", "runs",
)  # fmt: skip
SCENARIOS = ((7, 1000.0), (1, 100.0), (7, 100.0))  # (channels, events per second)
CONNECT_SECONDS = 90.0


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def expected_events(channel: int, published: int, channels: int) -> int:
    """Events published on channel number ``channel`` (events go round-robin)."""
    return len(range(channel, published, channels))


class Counted:
    """What the report needs of any client: events counted and the server's close code."""

    events: int = 0
    close_code: int | None = None


async def _wait_for_end(
    clients: list[tuple[int, Any]], channels: int, published: Any, drain: float
) -> None:
    """Wait for the publisher, then until every client has its events (or ``drain`` runs out)."""
    while published.value < 0:  # noqa: ASYNC110 - a flag set by another process
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        if all(
            c.events >= expected_events(i % channels, published.value, channels)
            or c.close_code is not None
            for i, c in clients
        ):
            return
        await asyncio.sleep(0.1)


def _report(
    clients: list[tuple[int, Any]],
    channels: int,
    published: int,
    latencies: list[float],
    failures: list[str],
    cpu_seconds_used: float,
) -> dict[str, Any]:
    missing = extra = short_clients = 0
    for i, client in clients:
        gap = expected_events(i % channels, published, channels) - client.events
        missing += max(gap, 0)
        extra += max(-gap, 0)
        short_clients += gap > 0
    return {
        "connected": len(clients),
        "connect_failures": failures[:5],
        "frames": sum(c.events for _, c in clients),
        "missing_frames": missing,
        "extra_frames": extra,
        "clients_missing_frames": short_clients,
        "closes": [c.close_code for _, c in clients if c.close_code is not None],
        "latencies": latencies,
        "cpu_s": cpu_seconds_used,
    }


def raw_clients(
    url: str, indices: list[int], channels: int, drain: float, ready: Any, out: Any, published: Any
) -> None:
    """Run :class:`~bench._ws_client.RawClient` clients; report counts, latencies, closes."""
    from bench._ws_client import RawClient

    _raise_fd_limit()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def main() -> None:
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        connected: list[tuple[int, RawClient]] = []
        failures: list[str] = []

        async def connect(index: int) -> None:
            path = f"{parts.path}?{parts.query}&channels={CHANNELS[index % channels]}"
            client = RawClient(host, port, path, latencies)
            try:
                await loop.create_connection(lambda: client, host, port)
                await asyncio.wait_for(asyncio.shield(client.welcomed), 60)
            except Exception as exc:  # reported, the run goes on without this client
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            connected.append((index, client))

        for batch in range(0, len(indices), 50):  # do not stampede the accept queue
            await asyncio.gather(*(connect(i) for i in indices[batch : batch + 50]))
        ready.put(len(connected))
        cpu_start = _cpu_self()
        await _wait_for_end(connected, channels, published, drain)
        report = _report(
            connected, channels, published.value, latencies, failures, _cpu_self() - cpu_start
        )
        out.put(("raw", report))
        for _, client in connected:
            client.close()
        await asyncio.sleep(0.5)

    _run(main())


def real_clients(
    url: str, indices: list[int], channels: int, drain: float, ready: Any, out: Any, published: Any
) -> None:
    """The same measurement with the ``websockets`` library's client (decodes every frame)."""
    import orjson
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    _raise_fd_limit()

    async def main() -> None:
        latencies: list[float] = []
        connected: list[tuple[int, Counted]] = []
        failures: list[str] = []
        stop = asyncio.Event()

        async def one(index: int, opened: asyncio.Future[None]) -> None:
            counted = Counted()
            try:
                async with connect(
                    f"{url}&channels={CHANNELS[index % channels]}",
                    max_size=None,
                    ping_interval=None,
                ) as ws:
                    await ws.recv()  # welcome
                    connected.append((index, counted))
                    opened.set_result(None)
                    reader = asyncio.ensure_future(_read(ws, counted))
                    await asyncio.wait(
                        {reader, asyncio.ensure_future(stop.wait())},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    reader.cancel()
            except ConnectionClosed as exc:
                counted.close_code = exc.rcvd.code if exc.rcvd else 1006
            except Exception as exc:  # reported, the run goes on without this client
                failures.append(f"{type(exc).__name__}: {exc}")
            if not opened.done():
                opened.set_result(None)

        async def _read(ws: Any, counted: Counted) -> None:
            try:
                async for raw in ws:
                    received = time.time()
                    message = orjson.loads(raw)
                    if "id" in message:
                        counted.events += 1
                        if message["data"].get("sample"):
                            latencies.append((received - message["data"]["sent"]) * 1000)
            except ConnectionClosed:
                pass
            counted.close_code = ws.close_code or 1006

        loop = asyncio.get_running_loop()
        tasks = []
        for index in indices:
            opened: asyncio.Future[None] = loop.create_future()
            tasks.append(asyncio.create_task(one(index, opened)))
            await opened
        ready.put(len(connected))
        cpu_start = _cpu_self()
        await _wait_for_end(connected, channels, published, drain)
        report = _report(
            connected, channels, published.value, latencies, failures, _cpu_self() - cpu_start
        )
        out.put(("real", report))
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    _run(main())


def _run(main: Any) -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, a little slower
        asyncio.run(main)
    else:
        uvloop.run(main)


def publish(
    stack: Stack, rate: float, duration: float, channels: int, sample_every: int
) -> tuple[int, float]:
    """Publish at a steady ``rate`` through the event bus; returns (events, seconds taken)."""
    import redis

    from tradeos_pipelines.event_bus import RedisEventBus

    bus = RedisEventBus(redis.Redis.from_url(stack.redis_url), namespace=stack.namespace)
    start = time.perf_counter()
    total = int(rate * duration)
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        bus.publish(
            CHANNELS[n % channels],
            "sync.progress",
            {
                "sent": time.time(),
                "seq": n,
                "sample": n % sample_every == 0,
                "integration_id": "bench",
                "name": "Товар",
            },
        )
    return total, time.perf_counter() - start


def run_scenario(stack: Stack, args: argparse.Namespace, channels: int, rate: float) -> dict:
    """Connect the clients, publish, collect; one row of the results."""
    url = f"{stack.ws_url}?token={stack.token}"
    real_count = min(args.real_clients, args.clients)
    step = max(1, args.clients // real_count) if real_count else 0
    real = list(range(0, args.clients, step))[:real_count] if real_count else []
    real_set = set(real)
    raw = [i for i in range(args.clients) if i not in real_set]
    ready, out = mp.Queue(), mp.Queue()
    published = mp.Value("q", -1)
    common = (channels, args.drain, ready, out, published)
    procs = [
        mp.Process(target=raw_clients, args=(url, raw[p :: args.procs], *common))
        for p in range(args.procs)
    ]
    if real:
        procs.append(mp.Process(target=real_clients, args=(url, real, *common)))
    for proc in procs:
        proc.start()
    connected = sum(ready.get(timeout=CONNECT_SECONDS + 60) for _ in procs)
    pid = stack.process.pid
    rss_idle, cpu_before = rss_mb(pid), cpu_seconds(pid)
    events, took = publish(stack, rate, args.duration, channels, args.sample_every)
    cpu_publishing = cpu_seconds(pid) - cpu_before
    rss_loaded = rss_mb(pid)
    published.value = events
    reports = [out.get(timeout=args.drain + 60) for _ in procs]
    cpu_total = cpu_seconds(pid) - cpu_before
    for proc in procs:
        proc.join(10)
    parts = {kind: [r for k, r in reports if k == kind] for kind in ("raw", "real")}

    def merged(kind: str) -> dict[str, Any]:
        rs = parts[kind]
        lat = [v for r in rs for v in r["latencies"]]
        return {
            "clients": sum(r["connected"] for r in rs),
            "samples": len(lat),
            "p50_ms": round(percentile(lat, 0.5), 1),
            "p95_ms": round(percentile(lat, 0.95), 1),
            "max_ms": round(max(lat), 1) if lat else None,
            "cpu_s": round(sum(r["cpu_s"] for r in rs), 1),
        }

    everything = [r for _, r in reports]
    closes = [c for r in everything for c in r["closes"]]
    frames = sum(r["frames"] for r in everything)
    expected = sum(
        expected_events(c, events, channels) * len(range(c, args.clients, channels))
        for c in range(channels)
    )
    latencies = [v for r in everything for v in r["latencies"]]
    row: dict[str, Any] = {
        "channels": channels,
        "rate": rate,
        "duration_s": args.duration,
        "clients": args.clients,
        "connected": connected,
        "published": events,
        "publish_seconds": round(took, 2),
        "frames_per_second_offered": round(expected / took),
        "frames": frames,
        "expected_frames": expected,
        "missing_frames": sum(r["missing_frames"] for r in everything),
        "extra_frames": sum(r["extra_frames"] for r in everything),
        "clients_missing_frames": sum(r["clients_missing_frames"] for r in everything),
        "latency_samples": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "dropped_1013": closes.count(1013),
        "other_closes": len(closes) - closes.count(1013),
        "connect_failures": [f for r in everything for f in r["connect_failures"]][:5],
        "sidecar_cpu_s_publishing": round(cpu_publishing, 1),
        "sidecar_core_share": round(cpu_publishing / took, 2),
        "sidecar_cpu_s_until_drained": round(cpu_total, 1),
        "sidecar_rss_mb_idle": rss_idle,
        "sidecar_rss_mb_loaded": rss_loaded,
        "raw_clients": merged("raw"),
        "real_clients": merged("real") if real else None,
    }
    row["goal_met"] = (
        row["p95_ms"] <= 100
        and not closes
        and connected == args.clients
        and frames == expected
        and row["missing_frames"] == 0
    )
    return row


def _print(rows: list[dict]) -> None:
    print(
        f"{'channels':>8} {'ev/s':>6} {'frames/s':>9} {'clients':>8} {'frames':>16} "
        f"{'p50':>7} {'p95':>7} {'max':>7} {'1013':>5} {'cpu':>5} {'rss MB':>6}  "
        f"{'websockets p50/p95':>18}  goal"
    )
    for r in rows:
        real = r["real_clients"]
        real_text = f"{real['p50_ms']}/{real['p95_ms']}" if real else "-"
        print(
            f"{r['channels']:>8} {r['rate']:>6.0f} {r['frames_per_second_offered']:>9} "
            f"{r['connected']:>8} {str(r['frames']) + '/' + str(r['expected_frames']):>16} "
            f"{r['p50_ms']:>7} {r['p95_ms']:>7} {r['max_ms']!s:>7} {r['dropped_1013']:>5} "
            f"{r['sidecar_core_share']:>5} {r['sidecar_rss_mb_loaded']:>6}  {real_text:>18}  "
            f"{'met' if r['goal_met'] else 'NOT met'}"
        )
    print(
        "latencies in ms (publish → receive, sampled events); cpu = sidecar cores used while "
        "publishing; goal: p95 <= 100 ms, every frame delivered, nobody dropped"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=1, help="processes of raw clients")
    parser.add_argument("--real-clients", type=int, default=50, help="websockets clients")
    parser.add_argument("--rate", type=float, help="events per second (one scenario)")
    parser.add_argument(
        "--channels", type=int, choices=range(1, len(CHANNELS) + 1), help="(one scenario)"
    )
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="sidecar on CPU 0, publisher and clients on the other CPUs (as when they run "
        "on other machines); Redis and anything else keep the whole machine",
    )
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait for stragglers")
    parser.add_argument("--sample-every", type=int, default=10, help="1 in N events is timed")
    args = parser.parse_args()
    _raise_fd_limit()
    if args.rate is None and args.channels is None:
        scenarios = list(SCENARIOS)
    else:
        scenarios = [(args.channels or len(CHANNELS), args.rate or 1000.0)]
    rows = []
    with sidecar_stack() as stack:
        if args.pin:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                parser.error("--pin needs at least two CPUs")
            os.sched_setaffinity(stack.process.pid, {cpus[0]})
            os.sched_setaffinity(0, set(cpus[1:]))  # inherited by the client processes
        for channels, rate in scenarios:
            rows.append(run_scenario(stack, args, channels, rate))
            _print(rows[-1:])
    print()
    _print(rows)
    write_results("ws_pinned" if args.pin else "ws", {"pinned": args.pin, "scenarios": rows})


if __name__ == "__main__":
    main()
