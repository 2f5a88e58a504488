"""OneCClient against the emulator over real HTTP: reading, auth, quirks, errors, retries."""

from __future__ import annotations

import asyncio
import gc
import importlib.machinery
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tradeos_pipelines.sources.common.errors import (
    OneCAuthError,
    OneCNotFound,
    OneCProtocolError,
    OneCUnavailable,
    OneCValidationError,
)
from tradeos_pipelines.sources.common.rows import NomenclatureItem, OrderCreate
from tradeos_pipelines.sources.http_service.client import OneCClient, RetryPolicy


async def read_all(pages):
    items, rejected, totals = [], [], []
    async for page in pages:
        items += page.items
        rejected += page.rejected
        totals.append(page.total)
    return items, rejected, totals


async def test_reads_every_entity_typed(emulator, make_client):
    rows = emulator.control.stats()["rows"]
    async with make_client(emulator) as client:
        items, rejected, totals = await read_all(client.iter_nomenclature(page_size=50))
        stock, _, _ = await read_all(client.iter_stock(page_size=1000))
        orders, _, _ = await read_all(client.iter_orders(page_size=7))
    assert len(items) == rows["nomenclature"] == totals[0] and not rejected
    assert len(stock) == rows["stock"] and len(orders) == rows["orders"]
    item = next(i for i in items if not i.is_folder)
    assert isinstance(item, NomenclatureItem)
    assert isinstance(item.id, uuid.UUID) and isinstance(item.price, Decimal)
    assert item.modified_at.tzinfo is not None and item.modified_at.utcoffset() == timedelta(
        hours=3
    )
    top_folders = [i for i in items if i.is_folder and i.group_id is None]
    assert top_folders
    assert all(s.available == s.quantity - s.reserved for s in stock)
    assert any(o.date is None for o in orders) and any(o.external_id is None for o in orders)


async def test_quirks_parse_to_the_same_values_as_clean_json(emulator, make_client):
    async with make_client(emulator) as client:
        clean = await read_all(client.iter_nomenclature())
        clean_stock = await read_all(client.iter_stock())
        clean_orders = await read_all(client.iter_orders())
        emulator.control.set_quirks(True)
        quirky = await read_all(client.iter_nomenclature())
        quirky_stock = await read_all(client.iter_stock())
        quirky_orders = await read_all(client.iter_orders())
    assert quirky[0] == clean[0] and not quirky[1]
    assert quirky_stock[0] == clean_stock[0]
    assert quirky_orders[0] == clean_orders[0]


async def test_changed_since_reads_only_later_rows_in_the_1c_zone(emulator, make_client):
    async with make_client(emulator) as client:
        items, _, _ = await read_all(client.iter_nomenclature())
        last = max(i.modified_at for i in items)
        assert not await client.has_changes("nomenclature", last)
        changed = set(emulator.control.change_items(4))
        assert await client.has_changes("nomenclature", last)
        # The same instant expressed in UTC: the client converts it to 1C's local time.
        later, _, totals = await read_all(client.iter_nomenclature(last.astimezone(UTC)))
    assert {str(i.id) for i in later} == changed and totals == [4]


async def test_a_row_changed_mid_pass_is_read_again(emulator, make_client):
    seen = []
    async with make_client(emulator) as client:
        async for page in client.iter_nomenclature(page_size=40):
            if not seen:
                emulator.control.change_items(ids=[str(page.items[0].id)])
            seen += [i.id for i in page.items]
    assert len(seen) == emulator.control.stats()["rows"]["nomenclature"] + 1
    assert seen.count(seen[0]) == 2


async def test_basic_auth_with_a_cyrillic_user(emulator_factory, make_client):
    server = emulator_factory(api_key=None, basic=("Администратор", "пароль"))
    async with make_client(server, username="Администратор", password="пароль") as client:
        health = await client.health()
    assert health.configuration == "УправлениеТорговлей" and health.version == "11.5.19.100"
    async with make_client(server, username="Администратор", password="неверный") as client:
        with pytest.raises(OneCAuthError, match=r"401.*Неверное имя пользователя"):
            await client.health()


async def test_wrong_api_key_is_an_auth_error_not_retried(emulator, make_client, sleeps):
    async with make_client(emulator, api_key="wrong") as client:
        with pytest.raises(OneCAuthError, match="403") as caught:
            await client.health()
    assert "wrong" not in str(caught.value)
    assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 1}
    assert sleeps.delays == []


async def test_wrong_base_url_is_not_found(emulator, make_client):
    client = OneCClient(emulator.root_url + "/trade/hs/api/oops/", api_key="test-key")
    async with client:
        with pytest.raises(OneCNotFound, match="check base_url"):
            await client.health()


async def test_base_url_with_or_without_trailing_slash(emulator, make_client):
    for url in (emulator.base_url, emulator.base_url + "/"):
        async with OneCClient(url, api_key="test-key") as client:
            assert (await client.health()).status == "ok"


async def test_retries_back_off_exponentially_with_full_jitter(emulator, make_client, sleeps):
    emulator.control.inject_fault("503", count=3)
    async with make_client(emulator) as client:  # jitter fixed at 1.0: delays are the ceilings
        assert (await client.health()).status == "ok"
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 4}


async def test_jitter_draws_below_the_ceiling(emulator, make_client, sleeps):
    emulator.control.inject_fault("502", count=2)
    draws = iter([0.25, 0.5])
    async with make_client(emulator, jitter=lambda: next(draws)) as client:
        await client.health()
    assert sleeps.delays == [0.125, 0.5]


async def test_retry_after_is_honoured(emulator, make_client, sleeps):
    emulator.control.inject_fault("429", retry_after=7)
    async with make_client(emulator) as client:
        await client.health()
    assert sleeps.delays == [7.0]


async def test_unavailable_after_retries_says_what_1c_said(emulator, make_client, sleeps):
    emulator.control.inject_fault("500", count=10)
    async with make_client(emulator) as client:
        with pytest.raises(OneCUnavailable) as caught:
            await client.health()
    error = caught.value
    assert error.attempts == 4 and error.status_code == 500
    assert "Превышено количество лицензий" in str(error)
    assert len(sleeps.delays) == 3


async def test_html_502_is_reduced_to_its_title(emulator, make_client):
    emulator.control.inject_fault("502", count=10)
    async with make_client(emulator) as client:
        with pytest.raises(OneCUnavailable, match="HTML page: 502 Bad Gateway"):
            await client.health()


async def test_dropped_connections_and_timeouts_are_retried(emulator, make_client, sleeps):
    emulator.control.inject_fault("drop")
    emulator.control.inject_fault("slow", seconds=3)
    # 1.5 s: well under the 3 s slow answer, well over what a loaded machine needs for a page.
    async with make_client(emulator, timeout=1.5) as client:
        items, _, _ = await read_all(client.iter_orders())
    assert items and len(sleeps.delays) == 2


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("truncated", "not valid JSON"),
        ("envelope", "without an 'items' list"),
        ("html", "HTML page: Вход в систему"),
    ],
)
async def test_a_body_that_is_not_the_contract_is_a_protocol_error(
    emulator, make_client, kind, fragment
):
    emulator.control.inject_fault(kind, path="/nomenclature")
    async with make_client(emulator) as client:
        with pytest.raises(OneCProtocolError, match=fragment):
            await read_all(client.iter_nomenclature())


async def test_bad_rows_are_rejected_and_the_rest_is_read(emulator, make_client):
    for kind in ("no_id", "no_name", "bad_price", "bad_uuid"):
        emulator.control.inject_bad_rows(kind)
    async with make_client(emulator) as client:
        items, rejected, _ = await read_all(client.iter_nomenclature())
    assert len(items) + 4 == emulator.control.stats()["rows"]["nomenclature"]
    assert sorted(r.reason.split(":")[0] for r in rejected) == ["id", "id", "name", "price"]


async def test_page_size_is_checked_before_asking_1c(emulator, make_client):
    async with make_client(emulator) as client:
        with pytest.raises(ValueError, match=r"page size must be 1\.\.1000"):
            await read_all(client.iter_stock(page_size=5000))


def _order(product_id, external_id=None):
    return OrderCreate(
        external_id=external_id or uuid.uuid4(),
        date=datetime(2026, 11, 20, 7, 15, 36, tzinfo=UTC),
        customer={"name": "ООО «Ромашка»", "inn": "7701234567"},
        items=[{"product_id": product_id, "quantity": Decimal(2), "price": Decimal("1234.50")}],
    )


async def _a_product(client):
    async for page in client.iter_nomenclature():
        return next(i.id for i in page.items if not i.is_folder)


async def test_create_order_survives_a_drop_after_1c_created_it(emulator, make_client, sleeps):
    async with make_client(emulator) as client:
        product = await _a_product(client)
        order = _order(product)
        emulator.control.inject_fault("drop_after", path="/orders", method="POST")
        created = await client.create_order(order)
    assert created.duplicate and created.external_id == order.external_id
    stored = emulator.control.orders(str(order.external_id))
    assert len(stored) == 1 and stored[0]["number"] == created.number
    assert stored[0]["request"]["date"] == "2026-11-20T10:15:36"  # 07:15 UTC in Moscow
    assert stored[0]["total"] == 2469.0
    assert len(sleeps.delays) == 1


async def test_create_order_refused_by_1c_carries_its_message(emulator, make_client):
    unknown = uuid.uuid4()
    async with make_client(emulator) as client:
        with pytest.raises(OneCValidationError) as caught:
            await client.create_order(_order(unknown))
    assert caught.value.message == f"Номенклатура не найдена: {unknown}"
    assert caught.value.status_code == 422
    assert emulator.control.counters()["requests"] == {"POST /hs/api/orders": 1}


async def test_create_order_twice_is_one_order(emulator, make_client):
    async with make_client(emulator) as client:
        order = _order(await _a_product(client))
        first = await client.create_order(order)
        second = await client.create_order(order)
    assert not first.duplicate and second.duplicate and first.id == second.id
    assert emulator.control.counters()["orders_created"] == 1


def test_constructor_refuses_bad_configuration():
    with pytest.raises(ValueError, match="either api_key or username"):
        OneCClient("http://1c/trade")
    with pytest.raises(ValueError, match="must not contain credentials"):
        OneCClient("http://user:secret@1c/trade", api_key="k")
    with pytest.raises(ValueError, match="http"):
        OneCClient("1c-server/trade", api_key="k")
    with pytest.raises(ValueError, match="unknown time zone"):
        OneCClient("http://1c/trade", api_key="k", tz="Moscow/Kremlin")


async def test_stock_of_one_warehouse(emulator, make_client):
    warehouse = emulator.control.stats()["warehouses"][0]["id"]
    async with make_client(emulator) as client:
        rows, _, totals = await read_all(client.iter_stock(page_size=25, warehouse_id=warehouse))
        everything, _, _ = await read_all(client.iter_stock())
    assert rows and {str(r.warehouse_id) for r in rows} == {warehouse}
    assert totals[0] == len(rows) < len(everything)
    assert rows == [r for r in everything if str(r.warehouse_id) == warehouse]


async def test_the_next_page_is_asked_for_before_a_page_is_handed_over(emulator, make_client):
    requests = "GET /hs/api/nomenclature"
    async with make_client(emulator) as client:
        pages = client.iter_nomenclature(page_size=10)
        await anext(pages)
        # No await from here on, so only a request already written to the socket can reach
        # 1C (the emulator runs on its own thread) while the caller holds this page.
        deadline = time.monotonic() + 5
        while emulator.control.counters()["requests"][requests] < 2:
            assert time.monotonic() < deadline, "the next page was not asked for"
            time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop on purpose (see above)
        await pages.aclose()
    assert emulator.control.counters()["requests"][requests] == 2


async def test_stopping_early_cancels_the_read_ahead(emulator, make_client):
    async with make_client(emulator) as client:
        async for page in client.iter_nomenclature(page_size=10):
            assert page.items
            break
        assert (await client.health()).status == "ok"
    served = emulator.control.counters()["requests"]["GET /hs/api/nomenclature"]
    assert served <= 2  # the first page and at most the one read ahead


async def test_a_failed_read_ahead_is_collected_when_the_caller_stops(
    emulator, make_client, caplog
):
    """The caller stops after page 1 while the read-ahead of page 2 has already failed: its
    error is retrieved, not reported by asyncio as "Task exception was never retrieved"."""
    requests = "GET /hs/api/nomenclature"

    class FailAfterFirstPage(httpx.AsyncHTTPTransport):
        armed = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if not self.armed:
                self.armed = True  # every later request gets a 500
                emulator.control.inject_fault("500", count=100)
            return response

    client = make_client(
        emulator, transport=FailAfterFirstPage(), retry=RetryPolicy(attempts=2, base_delay=0)
    )
    async with client:
        pages = client.iter_nomenclature(page_size=10)
        await anext(pages)
        deadline = time.monotonic() + 5
        while emulator.control.counters()["responses"].get("500", 0) < 2:
            assert time.monotonic() < deadline, "the read-ahead was not retried"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the read-ahead task ends with OneCUnavailable
        await pages.aclose()
    assert emulator.control.counters()["requests"][requests] == 3  # page 1, two attempts
    del pages
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_requests_do_not_search_for_a_module_each_time(emulator, make_client, monkeypatch):
    """httpcore 1.0.9 imports sniffio on every lock it sets up; if sniffio were missing, each
    request would scan sys.path for it again (encode/httpcore#1103). It is a dependency."""
    searched: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec

    def recording(name: str, *args: object, **kwargs: object) -> object:
        searched.append(name)
        return find_spec(name, *args, **kwargs)

    async with make_client(emulator) as client:
        await client.fetch_page("nomenclature", limit=5, use_cache=False)  # imports settle
        monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", recording)
        async for _ in client.iter_nomenclature(page_size=20):
            pass
    assert searched == []
