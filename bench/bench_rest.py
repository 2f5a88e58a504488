"""REST list routes under a fixed arrival rate: p50/p95 latency (goal p95 <= 50 ms at 200 rps).

Starts ``python -m api`` on a throwaway database seeded with 20 integrations and 20,000 sync
logs, then fires GET /integrations, /sync-logs?limit=50 and /stats?window=7d in turn at
``--rate`` requests per second for ``--duration`` seconds (open loop: a slow answer does not
delay the next request). Run: ``.venv/bin/python bench/bench_rest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._sidecar import percentile, rss_mb, sidecar_stack, write_results

ROUTES = ("/api/v1/integrations", "/api/v1/sync-logs?limit=50", "/api/v1/stats?window=7d")


def seed(database_url: str, integrations: int, logs: int) -> None:
    from sqlalchemy import insert

    from tradeos_pipelines.db.engine import get_engine
    from tradeos_pipelines.db.models import Integration, SyncLog
    from tradeos_pipelines.secrets import encrypt_json, encrypt_text

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


async def load(base_url: str, token: str, rate: float, duration: float) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=10
    ) as client:

        async def one(route: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.get(route)
            except httpx.HTTPError:
                errors += 1
                return
            if response.status_code != 200:
                errors += 1
                return
            latencies[route].append((time.perf_counter() - started) * 1000)

        for route in ROUTES:  # warm-up
            await one(route)
        for values in latencies.values():
            values.clear()
        tasks = []
        start = time.perf_counter()
        total = int(rate * duration)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(ROUTES[i % len(ROUTES)])))
        await asyncio.gather(*tasks)
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
        result = asyncio.run(load(stack.api_url, stack.token, args.rate, args.duration))
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
        f"sidecar RSS {rss} MB"
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
            "routes": rows,
            "goal_met": goal_met,
        },
    )


if __name__ == "__main__":
    main()
