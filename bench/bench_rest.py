"""REST list routes under a fixed arrival rate: p50/p95 latency (goal p95 <= 50 ms at 200 rps).

Starts ``python -m api`` on a throwaway database seeded with 20 integrations and 20,000 sync
logs, then fires GET /integrations, /sync-logs?limit=50 and /stats?window=7d in turn at
``--rate`` requests per second for ``--duration`` seconds (open loop: a slow answer does not
delay the next request, and latency counts from when a request was due) over keep-alive
connections. Reports the sidecar's CPU seconds too. Run: ``.venv/bin/python bench/bench_rest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._sidecar import cpu_seconds, percentile, rss_mb, sidecar_stack, write_results

ROUTES = ("/api/v1/integrations", "/api/v1/sync-logs?limit=50", "/api/v1/stats?window=7d")


def seed(database_url: str, integrations: int, logs: int) -> None:
    from sqlalchemy import insert

    from tradeos_pipelines.core.secrets import encrypt_json, encrypt_text
    from tradeos_pipelines.storage.database import get_engine
    from tradeos_pipelines.storage.tables import Integration, SyncLog

    engine = get_engine(database_url)
    now = datetime.now(UTC)
    rng = random.Random(1)
    with engine.begin() as conn:
        conn.execute(
            insert(Integration),
            [
                {
                    "id": f"base-{i}",
                    "name": f"База {i}",
                    "base_url": f"http://1c-{i}.local/trade",
                    "auth_type": "api_key",
                    "credentials_encrypted": encrypt_json({"api_key": "k"}),
                    "webhook_secret_encrypted": encrypt_text("s" * 32),
                }
                for i in range(integrations)
            ],
        )
        rows = []
        for n in range(logs):
            started = now - timedelta(seconds=rng.uniform(0, 7 * 86400))
            rows.append(
                {
                    "integration_id": f"base-{n % integrations}",
                    "entity": ("nomenclature", "stock", "orders")[n % 3],
                    "status": rng.choice(("success", "success", "success", "partial", "failed")),
                    "started_at": started,
                    "finished_at": started + timedelta(seconds=rng.uniform(0.5, 120)),
                    "fetched": rng.randint(0, 5000),
                    "created": rng.randint(0, 50),
                    "updated": rng.randint(0, 500),
                }
            )
        conn.execute(insert(SyncLog), rows)


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive GET client on asyncio streams.

    httpx spends about as much CPU per request as the routes under test, so on a small
    machine it measured itself; this one parses just the status line and Content-Length.
    """

    def __init__(self, base_url: str, token: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = f"Host: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n"
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> int:
        """The status code of ``GET path`` (the body is read and dropped)."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._get(reader, writer, path)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed this idle keep-alive connection (its timeout): as any
                # HTTP client does, retry on another one.
                writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self._get(reader, writer, path)

    async def _get(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> int:
        writer.write(f"GET {path} HTTP/1.1\r\n{self.headers}".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()


async def load(base_url: str, token: str, rate: float, duration: float) -> dict[str, list[float]]:
    """Open loop: request i is due at ``i / rate``; latency counts from when it was due."""
    latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors = 0
    failures: dict[str, int] = {}
    client = KeepAliveClient(base_url, token)

    async def one(route: str, due: float) -> None:
        nonlocal errors
        try:
            code = await asyncio.wait_for(client.get(route), 10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            errors += 1
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            return
        if code != 200:
            errors += 1
            failures[f"HTTP {code}"] = failures.get(f"HTTP {code}", 0) + 1
            return
        latencies[route].append((time.perf_counter() - due) * 1000)

    for route in ROUTES:  # warm-up
        await one(route, time.perf_counter())
    for values in latencies.values():
        values.clear()
    tasks = []
    start = time.perf_counter()
    total = int(rate * duration)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(ROUTES[i % len(ROUTES)], due)))
    await asyncio.gather(*tasks)
    client.close()
    if failures:
        print("failures:", failures)
    latencies["errors"] = [errors]
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--logs", type=int, default=20_000)
    args = parser.parse_args()
    with sidecar_stack() as stack:
        seed(stack.database_url, 20, args.logs)
        from tradeos_pipelines.storage.tokens import create_token

        # A stored token, as operators use (the admin token would skip the token check).
        token = create_token("bench", database_url=stack.database_url)
        cpu_before = cpu_seconds(stack.process.pid)
        result = asyncio.run(load(stack.api_url, token, args.rate, args.duration))
        cpu = round(cpu_seconds(stack.process.pid) - cpu_before, 1)
        rss = rss_mb(stack.process.pid)
    errors = result.pop("errors")[0]
    rows = []
    every = [v for values in result.values() for v in values]
    for route, values in [*result.items(), ("all", every)]:
        rows.append(
            {
                "route": route,
                "requests": len(values),
                "p50_ms": round(percentile(values, 0.5), 1),
                "p95_ms": round(percentile(values, 0.95), 1),
                "max_ms": round(max(values), 1) if values else None,
            }
        )
    print(
        f"REST load: {args.rate:.0f} req/s for {args.duration:.0f} s, {errors} errors, "
        f"sidecar CPU {cpu} s, RSS {rss} MB"
    )
    print(f"{'route':<32}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for r in rows:
        print(f"{r['route']:<32}{r['requests']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['max_ms']:>9}")
    goal_met = rows[-1]["p95_ms"] <= 50 and errors == 0
    print(f"goal p95 <= 50 ms: {'met' if goal_met else 'NOT met'}")
    write_results(
        "bench_rest",
        {
            "rate": args.rate,
            "duration_s": args.duration,
            "errors": errors,
            "rss_mb": rss,
            "sidecar_cpu_s": cpu,
            "routes": rows,
            "goal_met": goal_met,
        },
    )


if __name__ == "__main__":
    main()
