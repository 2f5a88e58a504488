"""Benchmark of the sync engine against the 1C emulator (a separate process), side by side:

- full sync of 100,000 items (engine time, committed)            goal ≤ 5 s
- incremental sync with 100 changed of 100,000                   goal ≤ 0.3 s, reads only changes
- peak RSS of a process running a full sync of 1,000,000 items   goal ≤ 200 MB, flat
  (pages from a streaming stand-in of the 1C service: see serve_stream)
- bare floor: plain httpx read of every page + COPY into a table (no engine)

Run: ``.venv/bin/python bench/bench_sync.py`` (``--items``, ``--big-items``, ``--skip-big``).
Servers: ``TRADEOS_TEST_POSTGRES_URL`` (admin URL; a dedicated database is created and dropped)
and ``TRADEOS_TEST_REDIS_URL`` (keys under a bench namespace, deleted at the end).
Results: a table on stdout and ``bench/results/sync.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import psycopg2
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._integrations import add_integrations  # noqa: E402
from bench._memory import peak_rss_kb  # noqa: E402

API_KEY = "bench-key"
PAGE_SIZE = 1000


def _env(admin_url: str, redis_url: str, database: str) -> dict[str, str]:
    from tradeos_pipelines.core.secrets import new_secret_key

    url = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    return {
        "TRADEOS_DATABASE_URL": url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_REDIS_NAMESPACE": f"tradeos-bench-{database}",
        "TRADEOS_SECRET_KEY": new_secret_key(),
    }


def _rows_served(emulator: Any) -> int:
    return int(emulator.control.counters()["rows_served"].get("nomenclature", 0))


def bench_engine(items: int) -> dict[str, Any]:
    """Full, then incremental syncs of ``items`` through the engine."""
    from tradeos_pipelines.emulators.http_service import EmulatorProcess
    from tradeos_pipelines.engine import sync_nomenclature

    out: dict[str, Any] = {}
    with EmulatorProcess(items=items, warehouses=5, api_key=API_KEY) as emulator:
        add_integrations(["bench"], emulator.base_url, {"api_key": API_KEY}, page_size=PAGE_SIZE)
        started = time.perf_counter()
        full = sync_nomenclature("bench", full=True)
        out["full"] = {
            "seconds": round(time.perf_counter() - started, 3),
            "engine_seconds": full.duration_s,
            "created": full.created,
            "fetched": full.fetched,
        }
        # First incremental after a full pass also re-reads the overlap window before the
        # catalogue's newest row; the steady state is the second one.
        emulator.control.change_items(100)
        sync_nomenclature("bench")
        emulator.control.change_items(100)
        before = _rows_served(emulator)
        started = time.perf_counter()
        incremental = sync_nomenclature("bench")
        out["incremental"] = {
            "seconds": round(time.perf_counter() - started, 3),
            "engine_seconds": incremental.duration_s,
            "rows_read": _rows_served(emulator) - before,
            "updated": incremental.updated,
            "unchanged_in_overlap": incremental.unchanged,
        }
        out["floor"] = bench_floor(emulator.base_url)
    return out


def bench_floor(base_url: str) -> dict[str, Any]:
    """Bare httpx reading every page, then COPY of the rows into a table: no engine at all."""
    dsn = make_url(os.environ["TRADEOS_DATABASE_URL"]).set(drivername="postgresql")
    conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_floor (r jsonb)")
        cur.execute("TRUNCATE bench_floor")
    read = copy = 0.0
    rows = 0
    with httpx.Client(base_url=base_url + "/hs/api", headers={"X-API-Key": API_KEY}) as http:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        while True:
            started = time.perf_counter()
            body = orjson.loads(http.get("/nomenclature", params=params).content)
            read += time.perf_counter() - started
            started = time.perf_counter()
            data = b"\n".join(orjson.dumps(item) for item in body["items"])
            with conn.cursor() as cur:
                cur.copy_expert(
                    "COPY bench_floor (r) FROM STDIN", io.BytesIO(data.replace(b"\\", b"\\\\"))
                )
            copy += time.perf_counter() - started
            rows += len(body["items"])
            if not body.get("next_cursor"):
                break
            params["cursor"] = body["next_cursor"]
    conn.close()
    return {
        "seconds": round(read + copy, 3),
        "read_seconds": round(read, 3),
        "copy_seconds": round(copy, 3),
        "rows": rows,
    }


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def serve_stream(items: int) -> None:
    """Run in a child: a minimal ``GET /hs/api/nomenclature`` generating rows on the fly.

    The bundled emulator keeps its whole infobase in memory (about 16 GB at 1,000,000 items),
    which this shared machine cannot give; the engine's RSS does not depend on who serves the
    pages, so the million-item run reads from this generator (same contract, cursor = offset).
    """

    def row(n: int) -> dict[str, Any]:
        return {
            "id": str(uuid.UUID(int=n + 1)),
            "code": f"00-{n:08d}",
            "article": f"ART-{n}",
            "name": f"Товар складской номер {n}",
            "full_name": f"Товар складской номер {n}, шт",
            "unit": "шт",
            "group_id": None,
            "is_folder": False,
            "barcodes": [f"46{n:011d}"],
            "price": round(10 + n % 10_000 * 1.37, 2),
            "vat": "20%",
            "deleted": False,
            "version": f"v{n}",
            "modified_at": "2025-06-02T09:00:00",
        }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not url.path.endswith("/hs/api/nomenclature"):
                self.send_error(404)
                return
            limit = int(query.get("limit", ["100"])[0])
            offset = int(query.get("cursor", ["0"])[0])
            end = min(offset + limit, items)
            body = orjson.dumps(
                {
                    "items": [row(n) for n in range(offset, end)],
                    "next_cursor": str(end) if end < items else None,
                    "total": items,
                }
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def bench_memory(items: int) -> dict[str, Any]:
    """Peak RSS of a child process running a full sync of ``items``, sampled while it runs."""
    source = subprocess.Popen(
        [sys.executable, __file__, "--serve-stream", str(items)], stdout=subprocess.PIPE, text=True
    )
    assert source.stdout is not None
    base_url = source.stdout.readline().strip() + "/trade"
    try:
        add_integrations(["bench-big"], base_url, {"api_key": API_KEY}, page_size=PAGE_SIZE)
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, __file__, "--child-sync", "bench-big"],
            stdout=subprocess.PIPE,
            text=True,
        )
        samples: list[tuple[float, float]] = []

        def sample() -> None:
            while child.poll() is None:
                rss = _rss_mb(child.pid)
                if rss is not None:
                    samples.append((round(time.perf_counter() - started, 1), round(rss, 1)))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        stdout, _ = child.communicate()
        sampler.join()
    finally:
        source.terminate()
        source.wait()
    if child.returncode != 0:
        raise RuntimeError(f"the child sync failed (exit {child.returncode})")
    report = json.loads(stdout.strip().splitlines()[-1])
    rss = [mb for _, mb in samples]
    # Flatness: the second half of the run should not sit higher than the first half.
    half = len(rss) // 2
    return {
        "items": items,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": report["peak_rss_mb"],
        "engine_seconds": report["engine_seconds"],
        "rss_first_half_max_mb": max(rss[:half]) if half else None,
        "rss_second_half_max_mb": max(rss[half:]) if rss else None,
        "samples": samples,
    }


def child_sync(integration_id: str) -> None:
    """Run in the child: one full sync, then report its own peak RSS as the last line."""
    from tradeos_pipelines.engine import sync_nomenclature

    result = sync_nomenclature(integration_id, full=True)
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "engine_seconds": result.duration_s,
                "created": result.created,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--big-items", type=int, default=1_000_000)
    parser.add_argument("--skip-big", action="store_true", help="skip the 1,000,000-item RSS run")
    parser.add_argument("--child-sync", help=argparse.SUPPRESS)
    parser.add_argument("--serve-stream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        child_sync(args.child_sync)
        return
    if args.serve_stream:
        serve_stream(args.serve_stream)
        return

    admin_url = os.environ.get(
        "TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    from tradeos_pipelines.core.settings import get_settings, normalize_database_url

    admin_url = normalize_database_url(admin_url)
    redis_url = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    database = f"tradeos_bench_sync_{secrets.token_hex(3)}"
    os.environ.update(_env(admin_url, redis_url, database))
    get_settings.cache_clear()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        from tradeos_pipelines.storage.migrate import upgrade_to_head

        upgrade_to_head(os.environ["TRADEOS_DATABASE_URL"])
        results: dict[str, Any] = {"items": args.items, "page_size": PAGE_SIZE}
        results.update(bench_engine(args.items))
        _report(results)  # the 100,000-item lines first: the million-item run takes minutes
        if not args.skip_big:
            results["memory"] = bench_memory(args.big_items)
            _report(results)
    finally:
        from tradeos_pipelines.storage.database import get_engine

        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=os.environ["TRADEOS_REDIS_NAMESPACE"] + ":*"):
            client.delete(key)
        client.close()


def _report(results: dict[str, Any]) -> None:
    full, inc, floor = results["full"], results["incremental"], results["floor"]
    n = results["items"]
    lines = [
        ("measure", "result", "goal"),
        (f"full sync {n:,} items (committed)", f"{full['seconds']:.2f} s", "≤ 5 s"),
        (
            "incremental, 100 changed",
            f"{inc['seconds']:.3f} s, {inc['rows_read']} rows read",
            "≤ 0.3 s, only changes",
        ),
        (
            "bare floor: httpx read + COPY",
            f"{floor['seconds']:.2f} s (read {floor['read_seconds']:.2f} + "
            f"COPY {floor['copy_seconds']:.2f})",
            "-",
        ),
    ]
    if "memory" in results:
        mem = results["memory"]
        lines.append(
            (
                f"peak RSS, full sync {mem['items']:,} items",
                f"{mem['peak_rss_mb']:.0f} MB (halves: {mem['rss_first_half_max_mb']} / "
                f"{mem['rss_second_half_max_mb']} MB; {mem['engine_seconds']:.0f} s)",
                "≤ 200 MB, flat",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(3)]
    for row in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        f"(incremental read {inc['rows_read']} rows: {inc['updated']} changed + "
        f"{inc['unchanged_in_overlap']} re-read in the overlap window, not rewritten)"
    )
    out = ROOT / "bench" / "results" / "sync.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
