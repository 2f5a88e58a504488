"""Fault bench: 1C down in the middle of a full sync; the sync rides it out in the same run.

- 1C answers 503 (HTML page of the web server) for ``--outage`` seconds (default 90) from the
  ``--after-page``-th page of a full sync of ``--items`` goods (default 100,000, pages of 1,000);
  the integration's retry budget is the default 120 s.
- Reported: the sync's status, rows lost (goods in 1C but not in ``products``), rows duplicated
  (more than one row per 1C id), attempts logged in ``integration_logs`` (the failed ones and
  the one that succeeded), total time, and time to recover (outage end → commit).

Run: ``uv run python bench/bench_faults.py [--items N] [--outage S]``. Servers as for
``bench_sync.py`` (``TRADEOS_TEST_POSTGRES_URL``, ``TRADEOS_TEST_REDIS_URL``; a dedicated
database and Redis namespace, dropped at the end). Results: a table on stdout and
``bench/results/faults.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sync import API_KEY, _add_integration, _env  # noqa: E402


class OutageOnPage:
    """An event publisher that, after ``page`` pages were staged, makes 1C answer 503 for
    ``seconds`` (then clears the fault from a timer thread) and records when it ended."""

    def __init__(self, emulator: Any, page: int, seconds: float) -> None:
        self.emulator, self.page, self.seconds = emulator, page, seconds
        self.pages = 0
        self.started: float | None = None
        self.ended: float | None = None

    def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None:
        if event_type == "sync.progress":
            self.pages += 1
            if self.pages == self.page:
                self.emulator.control.inject_fault("503", 1_000_000, path="nomenclature")
                self.started = time.monotonic()
                threading.Timer(self.seconds, self._end).start()
        return None

    def _end(self) -> None:
        self.emulator.control.clear_faults()
        self.ended = time.monotonic()


def bench_outage(items: int, outage: float, after_page: int) -> dict[str, Any]:
    """One full sync through an outage; the numbers the issue asks for."""
    from tradeos_pipelines.emulators.http_service import EmulatorProcess
    from tradeos_pipelines.engine import sync_nomenclature
    from tradeos_pipelines.storage.database import get_engine

    with EmulatorProcess(items=items, warehouses=5, api_key=API_KEY) as emulator:
        _add_integration("bench", emulator.base_url)
        in_1c = emulator.control.stats()["rows"]["nomenclature"]
        publisher = OutageOnPage(emulator, after_page, outage)
        started = time.monotonic()
        result = sync_nomenclature("bench", full=True, publisher=publisher, run_id="bench-outage")
        finished = time.monotonic()
    with get_engine().connect() as conn:
        rows, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT onec_id) FROM products")
        ).one()
        groups = conn.execute(text("SELECT count(*) FROM product_groups")).scalar_one()
        attempts = dict(
            conn.execute(
                text(
                    "SELECT coalesce(status_code::text, 'none'), count(*) FROM integration_logs "
                    "WHERE run_id = 'bench-outage' GROUP BY 1"
                )
            ).all()
        )
    return {
        "items": items,
        "outage_s": outage,
        "status": result.status,
        "rows_in_1c": in_1c,
        "rows_committed": rows + groups,
        "rows_lost": in_1c - (distinct + groups),
        "rows_duplicated": rows - distinct,
        "attempts_logged": attempts,
        "sync_s": round(finished - started, 1),
        "recovery_s": round(finished - publisher.ended, 1) if publisher.ended else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--outage", type=float, default=90.0)
    parser.add_argument("--after-page", type=int, default=20)
    args = parser.parse_args()

    from tradeos_pipelines.core.settings import get_settings, normalize_database_url

    admin_url = normalize_database_url(
        os.environ.get("TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    database = f"tradeos_bench_faults_{secrets.token_hex(3)}"
    os.environ.update(_env(admin_url, redis_url, database))
    get_settings.cache_clear()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        from tradeos_pipelines.storage.migrate import upgrade_to_head

        upgrade_to_head(os.environ["TRADEOS_DATABASE_URL"])
        results = bench_outage(args.items, args.outage, args.after_page)
        width = max(len(k) for k in results)
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
        out = ROOT / "bench" / "results" / "faults.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
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


if __name__ == "__main__":
    main()
