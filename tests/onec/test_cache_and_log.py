"""The Redis cache of lookups and the integration_logs request log."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from sqlalchemy import create_engine, select

from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.errors import OneCUnavailable
from tradeos_pipelines.storage.request_log import IntegrationLogWriter
from tradeos_pipelines.storage.tables import IntegrationLog


async def test_health_is_cached_until_invalidated(emulator, make_client, aredis):
    async with make_client(emulator, redis=aredis) as client:
        await client.health()
        await client.health()
        assert emulator.control.counters()["requests"]["GET /hs/api/health"] == 1
        assert await invalidate(aredis, "main-1c", "health") == 1
        await client.health()
    assert emulator.control.counters()["requests"]["GET /hs/api/health"] == 2


async def test_lookups_are_cached_per_entity_and_bulk_reads_never(emulator, make_client, aredis):
    async with make_client(emulator, redis=aredis, cache_ttl_seconds=300) as client:
        first = await client.fetch_page("orders", limit=5)
        emulator.control.set_order_status(str(first.items[0].id), "Закрыт")
        assert await client.fetch_page("orders", limit=5) == first  # from the cache
        await client.fetch_page("stock", limit=5)
        assert await invalidate(aredis, "main-1c", "orders") == 1
        fresh = await client.fetch_page("orders", limit=5)
        # The edited order moved to the end of 1C's change order: no longer on the first page.
        assert first.items[0].id not in {o.id for o in fresh.items}
        async for _ in client.iter_orders():
            pass
        async for _ in client.iter_orders():
            pass
    requests = emulator.control.counters()["requests"]["GET /hs/api/orders"]
    assert requests == 2 + 2  # two uncached lookups + two bulk passes of one page each
    keys = [k async for k in aredis.scan_iter(match="*:onec:cache:main-1c:*")]
    assert len(keys) == 2  # orders (fresh) and stock; no bulk page was stored
    for key in keys:
        assert b"test-key" not in key and b"test-key" not in await aredis.get(key)


async def test_invalidate_refuses_unknown_entities(aredis):
    with pytest.raises(ValueError, match="unknown entity"):
        await invalidate(aredis, "main-1c", "products")


async def test_every_attempt_is_logged_without_credentials(emulator_factory, make_client, db):
    server = emulator_factory(api_key=None, basic=("Администратор", "секрет-пароль"))
    server.control.inject_fault("503", count=2)
    writer = IntegrationLogWriter(db, batch_size=200, flush_interval=60)
    async with make_client(
        server,
        username="Администратор",
        password="секрет-пароль",
        request_log=writer,
        run_id="run-42",
    ) as client:
        await client.health()
        server.control.inject_fault("500", count=4)
        with pytest.raises(OneCUnavailable):
            async for _ in client.iter_stock(page_size=10):
                pass
    await writer.aclose()
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(select(IntegrationLog).order_by(IntegrationLog.id)).all()
    engine.dispose()
    assert [(r.method, r.status_code, r.attempt) for r in rows] == [
        ("GET", 503, 1),
        ("GET", 503, 2),
        ("GET", 200, 3),
        ("GET", 500, 1),
        ("GET", 500, 2),
        ("GET", 500, 3),
        ("GET", 500, 4),
    ]
    assert rows[0].path == "/hs/api/health" and rows[3].path == "/hs/api/stock?limit=10"
    assert rows[2].error is None and "лицензий" in rows[3].error
    assert all(r.integration_id == "main-1c" and r.run_id == "run-42" for r in rows)
    # Measured, not defaulted: every attempt over HTTP took some time, within the 10 s timeout.
    assert all(0 < float(r.duration_ms) < 10_000 for r in rows)
    token = base64.b64encode("Администратор:секрет-пароль".encode()).decode()
    for row in rows:
        text = " ".join(str(v) for v in row._mapping.values())
        assert "секрет-пароль" not in text and token not in text


async def test_a_request_the_caller_stopped_waiting_for_is_logged_too(emulator, make_client, db):
    """A sync that fails while its next page is being read ahead cancels that read; the
    request reached 1C all the same, so it is logged like any other attempt."""
    emulator.control.inject_fault("slow", count=1, path="/stock", seconds=5)
    writer = IntegrationLogWriter(db, batch_size=200, flush_interval=60)
    async with make_client(emulator, request_log=writer, run_id="run-7") as client:
        read = asyncio.ensure_future(client.iter_stock(page_size=10).__anext__())
        for _ in range(200):  # until the emulator holds the request (at most 10 s)
            if emulator.control.counters()["faults_served"].get("slow", 0) == 1:
                break
            await asyncio.sleep(0.05)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
    await writer.aclose()
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(select(IntegrationLog).order_by(IntegrationLog.id)).all()
    engine.dispose()
    assert [(r.method, r.path, r.status_code, r.attempt, r.run_id) for r in rows] == [
        ("GET", "/hs/api/stock?limit=10", None, 1, "run-7")
    ]
    assert rows[0].error.startswith("cancelled after ")
    assert rows[0].error.endswith(" s: the caller stopped")


def test_log_writer_flushes_in_batches_from_its_thread(db):
    writer = IntegrationLogWriter(db, batch_size=3, flush_interval=60)
    engine = create_engine(db)

    def count() -> int:
        with engine.connect() as conn:
            return len(conn.execute(select(IntegrationLog.id)).all())

    for attempt in range(1, 4):
        writer.record(
            integration_id="main-1c",
            method="GET",
            path="/hs/api/stock",
            status_code=200,
            duration_ms=1.5,
            attempt=attempt,
        )
    deadline = time.monotonic() + 10
    while count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count() == 3  # the batch filled: written without waiting for close
    one = {"integration_id": "main-1c", "method": "GET", "path": "/x", "status_code": None}
    writer.record(**one, duration_ms=1, attempt=1)
    assert count() == 3
    writer.close()
    assert count() == 4
    engine.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        writer.record(**one, duration_ms=1, attempt=2)
