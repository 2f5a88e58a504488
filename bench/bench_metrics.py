"""What a Prometheus scrape of ``/metrics`` costs, with the cache off (every scrape computes).

Seeds a throwaway database with 20 integrations, ``--logs`` sync logs (20,000) and
``--requests`` rows of ``integration_logs`` (1,000,000, all older than the 30 s settle time),
then times: the first scrape (it folds the whole request log once), ``--scrapes`` later
scrapes with nothing new, and one after ``--new`` (10,000) more request-log rows.
Run: ``.venv/bin/python bench/bench_metrics.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._sidecar import cpu_seconds, sidecar_stack, write_results
from bench.bench_rest import seed

REQUEST_LOG_SQL = """
INSERT INTO integration_logs (integration_id, at, method, path, status_code, duration_ms)
SELECT 'base-' || (n % 20), now() - interval '1 hour', 'GET', '/hs/api/nomenclature',
    CASE WHEN n % 50 = 0 THEN 503 ELSE 200 END, 20 + (n % 400)
FROM generate_series(1, :count) AS n
"""


def add_request_log(database_url: str, count: int) -> None:
    from sqlalchemy import text

    from tradeos_pipelines.storage.database import get_engine

    with get_engine(database_url).begin() as conn:
        conn.execute(text(REQUEST_LOG_SQL), {"count": count})


def scrape(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.get("/metrics")
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logs", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    os.environ["TRADEOS_METRICS_CACHE_SECONDS"] = "0"
    with sidecar_stack() as stack:
        seed(stack.database_url, 20, args.logs)
        add_request_log(stack.database_url, args.requests)
        headers = {"Authorization": f"Bearer {stack.token}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=120) as client:
            cpu_before = cpu_seconds(stack.process.pid)
            first = scrape(client)
            first_cpu = cpu_seconds(stack.process.pid) - cpu_before
            cpu_before = cpu_seconds(stack.process.pid)
            steady = [scrape(client) for _ in range(args.scrapes)]
            steady_cpu = (cpu_seconds(stack.process.pid) - cpu_before) / args.scrapes
            add_request_log(stack.database_url, args.new)
            after_new = scrape(client)
            size = len(client.get("/metrics").content)
    result = {
        "sync_logs": args.logs,
        "integration_logs": args.requests,
        "first_scrape_ms": round(first, 1),
        "first_scrape_sidecar_cpu_s": round(first_cpu, 2),
        "scrape_median_ms": round(statistics.median(steady), 1),
        "scrape_max_ms": round(max(steady), 1),
        "scrape_sidecar_cpu_ms": round(steady_cpu * 1000, 1),
        "scrape_after_new_rows_ms": round(after_new, 1),
        "new_rows": args.new,
        "body_bytes": size,
    }
    for key, value in result.items():
        print(f"{key:<30}{value}")
    write_results("bench_metrics", result)


if __name__ == "__main__":
    main()
