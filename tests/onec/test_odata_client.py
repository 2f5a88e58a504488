"""ODataClient against the OData emulator over real HTTP: paging, joins, change detection,
$metadata checks, 1C's error bodies, retries, and orders created once and posted."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fixtures.emulator import ODATA_PASSWORD, ODATA_USER
from tradeos_pipelines.emulators.odata import ODataEmulatorServer
from tradeos_pipelines.sources.common.errors import (
    OneCAuthError,
    OneCNotFound,
    OneCUnavailable,
    OneCValidationError,
)
from tradeos_pipelines.sources.common.rows import (
    OrderCreate,
    OrderCustomer,
    OrderLine,
)
from tradeos_pipelines.sources.common.transport import RetryPolicy
from tradeos_pipelines.sources.odata import client as odata_client_module
from tradeos_pipelines.sources.odata import metadata as md
from tradeos_pipelines.sources.odata.client import ODataClient, OrderNotPosted

GOODS = "Catalog_Номенклатура"


@pytest.fixture(autouse=True)
def fresh_metadata() -> Iterator[None]:
    """Each test reads $metadata itself (the process keeps it for an hour otherwise)."""
    md.forget_local("ut")
    yield
    md.forget_local("ut")


@pytest.fixture
def raw(odata_emulator) -> Callable[..., list[dict[str, Any]]]:
    """1C's rows as the emulator serves them, read with plain httpx."""
    http = httpx.Client(
        base_url=odata_emulator.odata_url + "/",
        auth=(ODATA_USER.encode(), ODATA_PASSWORD.encode()),
        timeout=30,
    )

    def get(resource: str) -> list[dict[str, Any]]:
        response = http.get(resource, params={"$format": "json"})
        response.raise_for_status()
        return response.json()["value"]

    return get


@pytest.fixture
def make_odata(sleeps) -> Callable[..., ODataClient]:
    def make(server: ODataEmulatorServer, **options: Any) -> ODataClient:
        options.setdefault("username", ODATA_USER)
        options.setdefault("password", ODATA_PASSWORD)
        options.setdefault("sleep", sleeps)
        options.setdefault("jitter", lambda: 1.0)
        options.setdefault("retry", RetryPolicy(attempts=3, base_delay=0.5, max_delay=10))
        options.setdefault("timeout", 10)
        options.setdefault("integration_id", "ut")
        return ODataClient(server.base_url, **options)

    return make


def retail_key(raw) -> str:
    return next(p["Ref_Key"] for p in raw("Catalog_ВидыЦен") if p["Description"] == "Розничная")


async def read_all(pages: AsyncIterator[Any]) -> tuple[list[Any], list[Any]]:
    items, rejected = [], []
    async for page in pages:
        items += page.items
        rejected += page.rejected
    return items, rejected


class HeldCatalogue:
    """What TradeOS holds, as the engine's ``StoredCatalogueReader`` answers it; it records
    the keys it was asked about, call by call."""

    def __init__(self, versions: dict[str, str | None]) -> None:
        self.held = versions
        self.asked: list[list[str]] = []

    def count(self) -> int:
        return len(self.held)

    def versions(self, keys: Sequence[str]) -> dict[str, list[str]]:
        self.asked.append(list(keys))
        return {key: [v] for key in keys if (v := self.held.get(key)) is not None}


def requests(emulator: ODataEmulatorServer, label: str) -> int:
    return emulator.control.counters()["requests"].get(label, 0)


async def test_full_read_pages_and_joins_names_barcodes_and_prices(odata_emulator, make_odata, raw):
    key = retail_key(raw)
    goods = raw(GOODS)
    barcodes, prices = md.BARCODES, "InformationRegister_ЦеныНоменклатуры25_RecordType/SliceLast(…)"
    labels = (f"GET {GOODS}", f"GET {barcodes}", f"GET {prices}")
    before = {label: requests(odata_emulator, label) for label in labels}
    async with make_odata(odata_emulator, price_type_key=key) as client:
        items, rejected = await read_all(client.iter_nomenclature(page_size=50))

    assert rejected == []
    assert sorted(str(i.id) for i in items) == sorted(g["Ref_Key"] for g in goods)
    # 1C sends no nextLink: $top/$skip pages of 50, the short fifth page ends the read, and
    # one more call checks that a Ref_Key range holds the first page's goods. The barcodes
    # and prices are read page by page (by the page's key range), never whole.
    assert len(goods) == 204
    assert {label: requests(odata_emulator, label) - n for label, n in before.items()} == {
        f"GET {GOODS}": 5 + 1,
        f"GET {barcodes}": 5,
        f"GET {prices}": 5,
    }
    item = next(i for i in items if not i.is_folder and i.barcodes)
    row = next(g for g in goods if g["Ref_Key"] == str(item.id))
    units = {u["Ref_Key"]: u["Description"] for u in raw("Catalog_УпаковкиЕдиницыИзмерения")}
    vats = {v["Ref_Key"]: v["Description"] for v in raw("Catalog_СтавкиНДС")}
    codes = sorted(
        b["Штрихкод"]
        for b in raw("InformationRegister_ШтрихкодыУпаковокТоваров")
        if b["Номенклатура_Key"] == row["Ref_Key"]
    )
    price = next(
        p["Цена"]
        for p in raw(
            f"InformationRegister_ЦеныНоменклатуры25_RecordType/SliceLast("
            f"Condition='ВидЦены_Key eq guid''{key}''')"
        )
        if p["Номенклатура_Key"] == row["Ref_Key"]
    )
    assert (item.name, item.code, item.unit, item.vat) == (
        row["Description"],
        row["Code"],
        units[row["ЕдиницаИзмерения_Key"]],
        vats[row["СтавкаНДС_Key"]],
    )
    assert item.barcodes == tuple(codes) and item.price == Decimal(str(price))
    assert item.version.split(":")[0] == row["DataVersion"] and item.modified_at is None


async def test_utf8_basic_auth_and_a_wrong_password(odata_emulator, make_odata):
    async with make_odata(odata_emulator) as client:
        assert (await client.health()).status == "ok"
    async with make_odata(odata_emulator, password="не-тот") as client:
        with pytest.raises(OneCAuthError) as refused:
            await client.health()
    assert str(refused.value).startswith("1C 'ut' refused the user name or password (401)")
    assert "не-тот" not in str(refused.value)


async def test_a_1c_whose_key_range_is_not_its_order_is_read_by_key(
    odata_emulator, make_odata, raw, caplog
):
    """Reading registers by a page's key range rests on 1C comparing references as it orders
    them. A base that answers the range check with other goods is read by keys instead: the
    same barcodes and prices, never another page's."""
    key = retail_key(raw)
    barcodes, prices = md.BARCODES, "InformationRegister_ЦеныНоменклатуры25_RecordType/SliceLast(…)"
    async with make_odata(odata_emulator, price_type_key=key) as client:
        expected, _ = await read_all(client.iter_nomenclature(page_size=50))
        stranger = str(uuid.uuid4())
        odata_emulator.control.inject_fault(
            200,
            body=f'{{"value":[{{"Ref_Key":"{stranger}"}}]}}',
            content_type="application/json;odata=nometadata",
            path=GOODS,
            query="Ref_Key ge guid",
        )
        before = {label: requests(odata_emulator, f"GET {label}") for label in (barcodes, prices)}
        with caplog.at_level(logging.WARNING, logger="tradeos_pipelines.sources.odata.client"):
            found, _ = await read_all(client.iter_nomenclature(page_size=50))

    def joined(items: list[Any]) -> list[tuple[Any, ...]]:
        return sorted((str(i.id), i.barcodes, i.price) for i in items)

    assert joined(found) == joined(expected)
    assert sum(bool(i.barcodes) for i in found) == sum(bool(i.barcodes) for i in expected) > 150
    # Pages of 50 keys (the fifth has 4), ten keys to a call, for each register.
    calls = {label: requests(odata_emulator, f"GET {label}") - n for label, n in before.items()}
    assert calls == {barcodes: 4 * 5 + 1, prices: 4 * 5 + 1}
    assert [r.getMessage() for r in caplog.records] == [
        "1C 'ut': a Ref_Key range of 50 goods in $orderby order answered 1 goods, not the same "
        "ones; barcodes and prices are read by key, 10 keys to a call (slower)"
    ]


async def test_incremental_reads_versions_then_only_what_changed(odata_emulator, make_odata, raw):
    async with make_odata(odata_emulator) as client:
        items, _ = await read_all(client.iter_nomenclature(page_size=50))
        held = HeldCatalogue({str(i.id): i.version for i in items})
        changed = odata_emulator.control.change_items(2)
        added = odata_emulator.control.add_items(1)
        served = odata_emulator.control.counters()["rows_served"][GOODS]

        found, _ = await read_all(client.iter_nomenclature(page_size=50, catalogue=held))

    assert sorted(str(i.id) for i in found) == sorted(changed + added)
    # The Ref_Key,DataVersion pass over every row, then the three full rows.
    after = odata_emulator.control.counters()["rows_served"][GOODS]
    assert after - served == len(items) + 1 + 3
    # What TradeOS holds is asked one page of the pass at a time, every key once.
    assert [len(keys) for keys in held.asked] == [len(items) + 1]
    assert sorted(held.asked[0]) == sorted([*held.held, *added])


async def test_the_version_pass_asks_page_by_page_and_fetches_as_it_goes(
    odata_emulator, make_odata, raw
):
    """Memory follows a page of the pass and the changes, never the stored catalogue."""
    async with make_odata(odata_emulator) as client:
        items, _ = await read_all(client.iter_nomenclature(page_size=50))
        held = HeldCatalogue({str(i.id): i.version for i in items})
        # The first three goods of the pass: their page of changes is full before it ends.
        first = [str(i.id) for i in items if not i.is_folder][:3]
        changed = odata_emulator.control.change_items(ids=first)
        pages = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(odata_client_module, "MAX_PAGE_SIZE", 20)
            async for page in client.iter_nomenclature(page_size=2, catalogue=held):
                pages.append((len(held.asked), sorted(str(i.id) for i in page.items)))

    sizes = [len(keys) for keys in held.asked]
    assert sizes == [20] * (len(items) // 20) + ([len(items) % 20] if len(items) % 20 else [])
    assert sorted(key for _, ids in pages for key in ids) == sorted(changed)
    # The first two changes went out as a page before the pass had asked about every key,
    # the third one after it.
    assert [ids for _, ids in pages] == [sorted(first[:2]), first[2:]]
    assert pages[0][0] < len(sizes)


async def test_a_price_set_since_the_last_pass_brings_the_good(odata_emulator, make_odata, raw):
    key = retail_key(raw)
    async with make_odata(odata_emulator, price_type_key=key) as client:
        items, _ = await read_all(client.iter_nomenclature(page_size=50))
        held = HeldCatalogue({str(i.id): i.version for i in items})
        since = datetime.now(UTC).replace(microsecond=0)
        repriced = odata_emulator.control.change_prices(1, price_type=key)["ids"]

        found, _ = await read_all(
            client.iter_nomenclature(changed_since=since, page_size=50, catalogue=held)
        )

    assert [str(i.id) for i in found] == repriced
    assert found[0].version != held.held[repriced[0]]  # the engine rewrites it


async def test_rows_the_user_may_not_read_are_left_out(odata_emulator, make_odata, raw):
    hidden = [g["Ref_Key"] for g in raw(GOODS)[:3]]
    odata_emulator.control.deny_read(GOODS, hidden)
    async with make_odata(odata_emulator) as client:
        items, _ = await read_all(client.iter_nomenclature(page_size=100))
    odata_emulator.control.allow_read(GOODS)
    everything = raw(GOODS)
    assert sorted(str(i.id) for i in items) == sorted(
        g["Ref_Key"] for g in everything if g["Ref_Key"] not in hidden
    )


async def test_stock_is_a_snapshot_with_warehouse_names(odata_emulator, make_odata, raw):
    names = {w["Ref_Key"]: w["Description"] for w in raw("Catalog_Склады")}
    balance = raw("AccumulationRegister_СвободныеОстатки/Balance(Dimensions='Номенклатура,Склад')")
    odata_emulator.control.reset()  # counters from zero
    async with make_odata(odata_emulator) as client:
        rows, rejected = await read_all(client.iter_stock(page_size=100))

    assert rejected == [] and len(rows) == len(balance)
    expected = {
        (b["Номенклатура_Key"], b["Склад_Key"]): b["ВНаличииBalance"] - b["ВРезервеСоСкладаBalance"]
        for b in balance
    }
    assert {(str(r.product_id), str(r.warehouse_id)): float(r.available) for r in rows} == expected
    assert {r.warehouse_name for r in rows} <= set(names.values())
    # Balance is computed once per warehouse, not once per page.
    assert requests(odata_emulator, "GET AccumulationRegister_СвободныеОстатки/Balance(…)") == len(
        names
    )


async def test_unpublished_object_fails_before_any_read(odata_emulator, make_odata):
    odata_emulator.control.unpublish(["Catalog_Склады"])
    async with make_odata(odata_emulator) as client:
        with pytest.raises(OneCNotFound) as missing:
            await read_all(client.iter_stock())
    assert "Catalog_Склады (warehouse names) is not published" in str(missing.value)
    assert "Настройка стандартного интерфейса OData" in str(missing.value)
    assert requests(odata_emulator, "GET AccumulationRegister_СвободныеОстатки/Balance(…)") == 0


async def test_metadata_without_a_needed_field_fails_before_any_read(odata_emulator, make_odata):
    async with httpx.AsyncClient(auth=(ODATA_USER.encode(), ODATA_PASSWORD.encode())) as http:
        document = (await http.get(odata_emulator.odata_url + "/$metadata")).text
    without = re.sub(r'<Property Name="Артикул"[^>]*/>', "", document, count=1)
    odata_emulator.control.inject_fault(
        200, 1, body=without, content_type="application/xml", path="$metadata"
    )
    async with make_odata(odata_emulator) as client:
        with pytest.raises(OneCNotFound) as missing:
            await read_all(client.iter_nomenclature())
    assert f"{GOODS} (goods and folders) has no field Артикул in $metadata" in str(missing.value)
    assert requests(odata_emulator, f"GET {GOODS}") == 0


async def test_odata_error_bodies_become_the_clients_errors(odata_emulator, make_odata):
    odata_emulator.control.deny_read(GOODS)
    async with make_odata(odata_emulator) as client:
        with pytest.raises(OneCAuthError) as denied:
            await client.get_rows(GOODS, {"$top": 1, "allowedOnly": "false"})
        with pytest.raises(OneCValidationError) as bad_query:
            await client.get_rows("Catalog_Склады", {"$filter": "Description eq"})
        with pytest.raises(OneCNotFound) as unknown:
            await client.get_rows("Catalog_НетТакого", {})
    assert "may not read Catalog_Номенклатура (code 20)" in str(denied.value)
    assert "Нарушение прав доступа" in str(denied.value)
    assert "(400, code 14)" in str(bad_query.value)
    assert bad_query.value.message.startswith("Ошибка при разборе опции запроса $filter")
    assert "Catalog_НетТакого not found (404, code 6)" in str(unknown.value)


async def test_html_pages_and_500s_are_retried_then_reported(odata_emulator, make_odata, sleeps):
    odata_emulator.control.inject_fault(502, 2, path="Catalog_Склады")
    async with make_odata(odata_emulator) as client:
        rows = await client.get_rows("Catalog_Склады", {})
        assert len(rows) == 3 and len(sleeps.delays) == 2
        odata_emulator.control.inject_fault(502, 3, path="Catalog_Склады")
        with pytest.raises(OneCUnavailable) as down:
            await client.get_rows("Catalog_Склады", {})
    assert down.value.attempts == 3 and "HTTP 502: HTML page" in down.value.last_cause


def _order(product_id: str, external_id: uuid.UUID | None = None) -> OrderCreate:
    return OrderCreate(
        external_id=external_id or uuid.uuid4(),
        date=datetime(2026, 11, 20, 7, 15, tzinfo=UTC),
        customer=OrderCustomer(name="ООО «Ромашка»", inn="7701234567", phone="+7 900 000-00-00"),
        items=[OrderLine(product_id=product_id, quantity=Decimal(2), price=Decimal("1234.50"))],
    )


def _good(raw) -> str:
    return next(g["Ref_Key"] for g in raw(GOODS) if not g["IsFolder"] and not g["DeletionMark"])


async def test_order_is_created_with_its_lines_posted_and_never_twice(
    odata_emulator, make_odata, raw
):
    order = _order(_good(raw))
    async with make_odata(odata_emulator) as client:
        created = await client.create_order(order)
        again = await client.create_order(order)

    [stored] = odata_emulator.control.created_orders()
    assert (created.id, created.duplicate, again.id, again.duplicate) == (
        uuid.UUID(stored["Ref_Key"]),
        False,
        created.id,
        True,
    )
    assert stored["Posted"] is True and stored["НомерПоДаннымКлиента"] == str(order.external_id)
    assert stored["Date"] == "2026-11-20T10:15:00"  # Moscow time, as 1C keeps it
    assert [
        (line["LineNumber"], line["Количество"], line["Сумма"]) for line in stored["Товары"]
    ] == [("1", 2, 2469)]
    assert stored["Комментарий"].startswith(f"TradeOS {order.external_id}: ООО «Ромашка»")


async def test_a_lost_answer_to_the_post_never_makes_a_second_order(
    odata_emulator, make_odata, raw
):
    order = _order(_good(raw))
    # The first POST is answered after the client gave up: 1C still creates the order.
    odata_emulator.control.inject_fault(
        None, 1, path="Document_ЗаказКлиента", method="POST", delay=2
    )
    async with make_odata(odata_emulator, timeout=1) as client:
        created = await client.create_order(order)
    # The first POST finishes inside the emulator: refused, the key exists.
    await asyncio.sleep(1.5)
    assert [o["Ref_Key"] for o in odata_emulator.control.created_orders()] == [str(created.id)]


async def test_a_refused_posting_is_a_clear_error_and_a_resend_posts(
    odata_emulator, make_odata, raw
):
    order = _order(_good(raw))
    odata_emulator.control.arm_posting_failure(1, "Недостаточно товара на складе")
    async with make_odata(odata_emulator) as client:
        with pytest.raises(OrderNotPosted) as refused:
            await client.create_order(order)
        [stored] = odata_emulator.control.created_orders()
        assert stored["Posted"] is False
        assert (refused.value.onec_id, refused.value.number) == (
            stored["Ref_Key"],
            stored["Number"],
        )
        assert refused.value.message == (
            f"1C created order {stored['Number']} but refused to post it: "
            "Недостаточно товара на складе"
        )
        resent = await client.create_order(order)
    assert resent.duplicate is True and str(resent.id) == stored["Ref_Key"]
    [posted] = odata_emulator.control.created_orders()
    assert posted["Posted"] is True


async def test_an_unknown_counterparty_is_refused_before_anything_is_created(
    odata_emulator, make_odata, raw
):
    order = _order(_good(raw))
    order = order.model_copy(
        update={"customer": OrderCustomer(name="ИП Неизвестный", inn="000000000000")}
    )
    async with make_odata(odata_emulator) as client:
        with pytest.raises(OneCValidationError) as refused:
            await client.create_order(order)
    assert refused.value.message.startswith(
        "no counterparty (Catalog_Контрагенты) with ИНН 000000000000 in 1C"
    )
    assert odata_emulator.control.created_orders() == []


async def test_change_probes_are_cheap_and_say_what_they_can(odata_emulator, make_odata, raw):
    key = retail_key(raw)
    async with make_odata(odata_emulator, price_type_key=key) as client:
        since = datetime.now(UTC).replace(microsecond=0)
        assert await client.has_changes("nomenclature", since) is False
        assert await client.has_changes("orders", since) is False
        assert await client.has_changes("stock", since) is False  # the schedule reads stock
        odata_emulator.control.change_prices(1, price_type=key)
        await client.create_order(_order(_good(raw)).model_copy(update={"date": since}))
        assert await client.has_changes("nomenclature", since) is True
        assert await client.has_changes("orders", since) is True
        assert await client.has_changes("nomenclature", None) is True


async def test_a_good_without_a_name_is_rejected_naming_the_field(odata_emulator, make_odata, raw):
    good = _good(raw)
    odata_emulator.control.change_items(ids=[good], fields={"Description": ""})
    async with make_odata(odata_emulator) as client:
        items, rejected = await read_all(client.iter_nomenclature(page_size=100))
    assert [(r.onec_id, r.reason) for r in rejected] == [
        (good, "Description: missing (required for an item that is not a folder)")
    ]
    assert good not in {str(i.id) for i in items}


async def test_fast_and_careful_paths_make_the_same_item(odata_emulator, make_odata, raw):
    key = retail_key(raw)
    rows = raw(GOODS)
    async with make_odata(odata_emulator, price_type_key=key) as client:
        parser = await client._goods_parser([r["Ref_Key"] for r in rows])
    assert [parser._fast(r) for r in rows] == [parser._careful(r) for r in rows]
