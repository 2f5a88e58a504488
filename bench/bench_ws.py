"""WebSocket relay under load: publish-to-receive latency with many subscribed clients.

One sidecar process (``python -m api``); ``--clients`` WebSocket clients (default 1,000) in
``--procs`` client processes, each subscribed to one channel (round-robin over the seven);
events are XADDed at ``--rate`` per second (default 1,000/s, round-robin over the channels)
for ``--duration`` seconds with the send time in the event data. Reports p50/p95/max
publish-to-receive latency, deliveries (per event and per second: the fan-out actually
measured), clients dropped, the sidecar's CPU time and RSS.
Goal: p95 <= 100 ms, no client that keeps up dropped. With the defaults every event goes to
~143 clients (143k frames/s); ``--channels 1`` publishes every event on one channel and
``--rate``/``--clients`` lower the fan-out, to report where the goal is reached.
Run: ``.venv/bin/python bench/bench_ws.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._sidecar import cpu_seconds, percentile, rss_mb, sidecar_stack, write_results

CHANNELS = (
    "sync_updates", "product_updates", "stock_updates", "order_updates",
    "integration_status", "alerts", "runs",
)  # fmt: skip


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loop_deadline(wall_clock: float) -> float:
    """The event loop's time at the wall-clock moment ``wall_clock``."""
    return asyncio.get_running_loop().time() + (wall_clock - time.time())


def client_process(
    url: str,
    token: str,
    first: int,
    count: int,
    subscribed: int,
    until: float,
    ready: Any,
    out: Any,
) -> None:
    """Run ``count`` clients until ``until`` (wall clock); report latencies and closes."""
    import orjson
    from websockets.asyncio.client import connect

    _raise_fd_limit()

    async def one(
        index: int, latencies: list[float], closes: list[int], connected: list[int]
    ) -> None:
        channel = CHANNELS[index % subscribed]
        async with connect(
            f"{url}?token={token}&channels={channel}", max_size=None, ping_interval=None
        ) as ws:
            await ws.recv()  # welcome
            connected.append(index)
            try:
                # One deadline for the whole run: a timer per message would cost the
                # clients more CPU than the sidecar spends per delivery.
                async with asyncio.timeout_at(loop_deadline(until)):
                    async for raw in ws:
                        received = time.time()
                        message = orjson.loads(raw)
                        sent = message.get("data", {}).get("sent") if "id" in message else None
                        if sent is not None:
                            latencies.append((received - sent) * 1000)
            except TimeoutError:
                return
            except Exception:
                closes.append(ws.close_code or -1)
            else:
                closes.append(ws.close_code or -1)

    async def main() -> None:
        latencies: list[float] = []
        closes: list[int] = []
        connected: list[int] = []
        tasks = []
        for i in range(first, first + count):
            tasks.append(asyncio.create_task(one(i, latencies, closes, connected)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # do not stampede the accept queue
        while len(connected) < count and time.time() < until:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        ready.put(len(connected))
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put({"latencies": latencies, "closes": closes})

    asyncio.run(main())


def publish(redis_url: str, namespace: str, rate: float, duration: float, channels: int) -> int:
    import redis

    from tradeos_pipelines.events import RedisEventBus

    bus = RedisEventBus(redis.Redis.from_url(redis_url), namespace=namespace)
    start = time.perf_counter()
    total = int(rate * duration)
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        bus.publish(
            CHANNELS[n % channels],
            "sync.progress",
            {"sent": time.time(), "seq": n, "integration_id": "bench", "name": "Товар"},
        )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--channels",
        type=int,
        default=len(CHANNELS),
        choices=range(1, len(CHANNELS) + 1),
        help="channels the clients subscribe to and events are spread over (round-robin)",
    )
    args = parser.parse_args()
    _raise_fd_limit()
    with sidecar_stack() as stack:
        connect_budget = 60.0
        until = time.time() + connect_budget + args.duration + 5
        ready, out = mp.Queue(), mp.Queue()
        per = args.clients // args.procs
        procs = []
        for p in range(args.procs):
            count = per if p < args.procs - 1 else args.clients - per * (args.procs - 1)
            proc = mp.Process(
                target=client_process,
                args=(stack.ws_url, stack.token, p * per, count, args.channels, until, ready, out),
            )
            proc.start()
            procs.append(proc)
        connected = sum(ready.get(timeout=connect_budget + 30) for _ in procs)
        rss_before = rss_mb(stack.process.pid)
        cpu_before = cpu_seconds(stack.process.pid)
        published = publish(
            stack.redis_url, stack.namespace, args.rate, args.duration, args.channels
        )
        rss_after = rss_mb(stack.process.pid)
        results = [out.get(timeout=until - time.time() + 60) for _ in procs]
        cpu_used = cpu_seconds(stack.process.pid) - cpu_before
        for proc in procs:
            proc.join(10)
    latencies = [v for r in results for v in r["latencies"]]
    closes = [c for r in results for c in r["closes"]]
    # Clients and events both go round-robin over the channels.
    expected = sum(
        len(range(c, published, args.channels)) * len(range(c, args.clients, args.channels))
        for c in range(args.channels)
    )
    summary = {
        "clients": args.clients,
        "channels": args.channels,
        "deliveries_per_event": round(args.clients / args.channels, 1),
        "deliveries_per_second": round(args.rate * args.clients / args.channels),
        "connected": connected,
        "rate": args.rate,
        "duration_s": args.duration,
        "published": published,
        "deliveries": len(latencies),
        "expected_deliveries": expected,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "dropped_1013": closes.count(1013),
        "other_closes": len(closes) - closes.count(1013),
        "sidecar_cpu_s": round(cpu_used, 1),
        "sidecar_rss_mb_idle": rss_before,
        "sidecar_rss_mb_loaded": rss_after,
    }
    summary["goal_met"] = (
        summary["p95_ms"] <= 100
        and not closes
        and connected == args.clients
        and len(latencies) == expected
    )
    print(
        f"WebSocket relay: {connected}/{args.clients} clients on {args.channels} channel(s), "
        f"{published} events at {args.rate:.0f}/s over {args.duration:.0f} s: "
        f"{summary['deliveries_per_event']} deliveries per event, "
        f"{summary['deliveries_per_second']} per second"
    )
    for key in (
        "deliveries",
        "expected_deliveries",
        "p50_ms",
        "p95_ms",
        "max_ms",
        "dropped_1013",
        "other_closes",
        "sidecar_cpu_s",
        "sidecar_rss_mb_idle",
        "sidecar_rss_mb_loaded",
    ):
        print(f"  {key:<24}{summary[key]}")
    verdict = "met" if summary["goal_met"] else "NOT met"
    print(f"goal p95 <= 100 ms, every frame delivered, nobody dropped: {verdict}")
    write_results("bench_ws", summary)


if __name__ == "__main__":
    main()
