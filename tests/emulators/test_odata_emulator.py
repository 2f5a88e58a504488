"""The OData emulator answers as a stock 1C:УТ 11.5 does (``shared/contracts/onec-odata.md``).

Every test talks to a real server over real HTTP with bare httpx: these tests check the
server side, not a client. URLs are built with ``%20`` for spaces, as 1C needs (a ``+`` is
not a space to 1C; one test checks that the emulator refuses it the same way).
"""

from __future__ import annotations

import base64
import gc
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tradeos_pipelines.emulators.odata import (
    Infobase,
    ODataEmulatorOptions,
    ODataEmulatorProcess,
    ODataEmulatorServer,
)

USER, PASSWORD = "Администратор", "пароль"
CONTROL_KEY = "control-key-for-tests"
GOODS = "Catalog_Номенклатура"
ORDERS = "Document_ЗаказКлиента"
PRICES = "InformationRegister_ЦеныНоменклатуры25"
STOCK = "AccumulationRegister_СвободныеОстатки"
ZERO = "00000000-0000-0000-0000-000000000000"
EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"


class OData:
    """A bare client of the emulator's standard.odata root with UTF-8 Basic credentials."""

    def __init__(self, emulator: ODataEmulatorServer, auth: tuple[str, str] | None = None) -> None:
        self.url = emulator.odata_url
        self.http = httpx.Client(auth=auth or (USER, PASSWORD), timeout=30)

    def url_of(self, path: str, **params: str) -> str:
        query = "&".join(
            f"{quote(k, safe='$')}={quote(v, safe=chr(39) + ',()')}" for k, v in params.items()
        )
        return f"{self.url}/{quote(path, safe=chr(39) + '/(),=$')}" + (f"?{query}" if query else "")

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(self.url_of(path, **params))

    def rows(self, path: str, **params: str) -> list[dict[str, Any]]:
        response = self.get(path, **{"$format": "json", **params})
        assert response.status_code == 200, response.text
        return response.json()["value"]

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return self.http.post(self.url_of(path, **{"$format": "json", **params}), json=body)

    def patch(self, path: str, body: Any) -> httpx.Response:
        return self.http.patch(self.url_of(path, **{"$format": "json"}), json=body)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """(status, 1C code, message), checking the error's exact shape on the way."""
    body = response.json()
    assert list(body) == ["odata.error"]
    error = body["odata.error"]
    assert set(error) == {"code", "message"}
    assert set(error["message"]) == {"lang", "value"} and error["message"]["lang"] == "ru"
    return response.status_code, error["code"], error["message"]["value"]


def read_all(client: OData, path: str, top: int = 37, **params: str) -> list[dict[str, Any]]:
    """Page with $top/$skip the way clients of 1C do: stop on a short page."""
    rows: list[dict[str, Any]] = []
    while True:
        response = client.get(
            path, **{"$format": "json", "$top": str(top), "$skip": str(len(rows)), **params}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "odata.nextLink" not in body
        rows += body["value"]
        if len(body["value"]) < top:
            return rows


@pytest.fixture(scope="module")
def emulator() -> Iterator[ODataEmulatorServer]:
    with ODataEmulatorServer(
        items=300, username=USER, password=PASSWORD, control_key=CONTROL_KEY
    ) as server:
        yield server


@pytest.fixture
def emu(emulator: ODataEmulatorServer) -> ODataEmulatorServer:
    """The module's emulator, back to its seeded state."""
    emulator.control.reset()
    return emulator


@pytest.fixture
def client(emu: ODataEmulatorServer) -> Iterator[OData]:
    odata = OData(emu)
    yield odata
    odata.http.close()


def guid_filter(keys: list[str], field: str = "Ref_Key") -> str:
    return " or ".join(f"{field} eq guid'{key}'" for key in keys)


# ----- reading ------------------------------------------------------------------------------------
def test_paging_by_top_and_skip_covers_every_key_once_and_stops_on_a_short_page(emu, client):
    rows = read_all(client, GOODS, **{"$orderby": "Ref_Key", "$select": "Ref_Key,DataVersion"})
    keys = [row["Ref_Key"] for row in rows]
    total = int(client.get(f"{GOODS}/$count").text)
    assert len(keys) == len(set(keys)) == total == emu.control.stats()["rows"][GOODS]
    assert keys == sorted(keys)
    assert total % 37 != 0  # so the last page was short, not empty
    requests = emu.control.counters()["requests"]
    assert requests[f"GET {GOODS}"] == total // 37 + 1


def test_filtered_paging_resumes_correctly_even_when_data_changes_mid_pass(emu, client):
    live = {"$filter": "DeletionMark eq false and IsFolder eq false", "$select": "Ref_Key"}
    expected = {r["Ref_Key"] for r in client.rows(GOODS, **live)}
    first = client.rows(GOODS, **live, **{"$top": "50"})
    emu.control.change_items(5)  # a write between pages: DataVersion changes, positions do not
    rest: list[dict[str, Any]] = []
    while True:
        page = client.rows(GOODS, **live, **{"$top": "50", "$skip": str(50 + len(rest))})
        rest += page
        if len(page) < 50:
            break
    keys = [r["Ref_Key"] for r in first + rest]
    assert len(keys) == len(set(keys)) and set(keys) == expected


def test_keyset_paging_by_ref_key_covers_every_key_once(client):
    keys: list[str] = []
    while True:
        params = {"$orderby": "Ref_Key", "$top": "40", "$select": "Ref_Key"}
        if keys:
            params["$filter"] = f"Ref_Key gt guid'{keys[-1]}'"
        page = [r["Ref_Key"] for r in client.rows(GOODS, **params)]
        keys += page
        if len(page) < 40:
            break
    assert keys == sorted(set(keys)) and len(keys) == int(client.get(f"{GOODS}/$count").text)


def test_select_returns_exactly_the_selected_properties(client):
    for select, expected in (
        ("Ref_Key,DataVersion", {"Ref_Key", "DataVersion"}),
        ("Description,Ref_Key,IsFolder", {"Ref_Key", "Description", "IsFolder"}),
        ("Ref_Key", {"Ref_Key"}),
    ):
        rows = client.rows(GOODS, **{"$select": select, "$top": "20"})
        assert len(rows) == 20 and all(set(row) == expected for row in rows)
    full = client.rows(GOODS, **{"$top": "1"})[0]
    assert list(full) == [
        "Ref_Key", "DataVersion", "DeletionMark", "Parent_Key", "IsFolder", "Code",
        "Description", "Артикул", "НаименованиеПолное", "ЕдиницаИзмерения_Key",
        "СтавкаНДС_Key", "ВидНоменклатуры_Key", "Predefined", "PredefinedDataName",
    ]  # fmt: skip
    lines = client.rows(ORDERS, **{"$select": "Number,Товары/Номенклатура_Key", "$top": "3"})
    assert all(set(o) == {"Number", "Товары"} for o in lines)
    assert all(set(line) == {"Номенклатура_Key"} for o in lines for line in o["Товары"])
    assert error_of(client.get(GOODS, **{"$format": "json", "$select": "НетТакогоПоля"})) == (
        400,
        "6",
        "Сегмент пути НетТакогоПоля не найден!",
    )


def test_batch_filter_by_keys_returns_exactly_those_objects(client):
    all_rows = client.rows(GOODS, **{"$select": "Ref_Key,Description,DeletionMark"})
    wanted = [row["Ref_Key"] for row in all_rows[5:60:7]]
    absent = "11111111-2222-1333-8444-555555555555"
    found = client.rows(GOODS, **{"$filter": guid_filter([*wanted, absent]), "$select": "Ref_Key"})
    assert [row["Ref_Key"] for row in found] == sorted(wanted)
    deleted = next(row["Ref_Key"] for row in all_rows if row["DeletionMark"])
    live = f"({guid_filter([wanted[0], deleted])}) and DeletionMark eq false"
    assert [r["Ref_Key"] for r in client.rows(GOODS, **{"$filter": live})] == [wanted[0]]


def test_data_version_changes_on_a_change_and_nowhere_else(emu, client):
    def versions() -> dict[str, str]:
        return {
            r["Ref_Key"]: r["DataVersion"]
            for r in client.rows(GOODS, **{"$select": "Ref_Key,DataVersion"})
        }

    before = versions()
    full_before = {r["Ref_Key"]: r for r in client.rows(GOODS)}
    assert all(len(base64.b64decode(v)) == 8 for v in before.values())
    changed = emu.control.change_items(4)
    after = versions()
    assert {key for key in before if before[key] != after[key]} == set(changed)
    for key in changed:
        row = client.get(f"{GOODS}(guid'{key}')", **{"$format": "json"}).json()
        assert row["Description"] != full_before[key]["Description"]
        assert row["Code"] == full_before[key]["Code"]
    assert after.keys() == before.keys()


def test_deletion_mark_is_set_and_filtered(emu, client):
    live_before = {r["Ref_Key"] for r in client.rows(GOODS, **{"$filter": "DeletionMark eq false"})}
    marked = emu.control.mark_deleted(3)
    assert set(marked) <= live_before
    rows = {r["Ref_Key"]: r for r in client.rows(GOODS, **{"$filter": guid_filter(marked)})}
    assert all(rows[key]["DeletionMark"] is True for key in marked)
    live_after = {r["Ref_Key"] for r in client.rows(GOODS, **{"$filter": "DeletionMark eq false"})}
    assert live_after == live_before - set(marked)


def test_folders_form_the_hierarchy_of_items(client):
    rows = client.rows(GOODS)
    folders = {r["Ref_Key"] for r in rows if r["IsFolder"]}
    items = [r for r in rows if not r["IsFolder"]]
    assert folders and items
    assert all(r["Parent_Key"] in folders for r in items)
    tops = [r for r in rows if r["IsFolder"] and r["Parent_Key"] == ZERO]
    assert tops and all(r["Parent_Key"] in folders | {ZERO} for r in rows if r["IsFolder"])
    assert [r["Ref_Key"] for r in client.rows(GOODS, **{"$filter": "IsFolder eq true"})] == sorted(
        folders
    )
    assert int(client.get(f"{GOODS}/$count", **{"$filter": "IsFolder eq false"}).text) == len(items)
    assert all(r["ЕдиницаИзмерения_Key"] == ZERO for r in rows if r["IsFolder"])


def test_count_single_entity_and_not_found(client):
    response = client.get(f"{GOODS}/$count")
    assert response.headers["content-type"].startswith("text/plain")
    assert int(response.text) == len(client.rows(GOODS))
    row = client.rows(GOODS, **{"$top": "1", "$skip": "10"})[0]
    single = client.get(f"{GOODS}(guid'{row['Ref_Key']}')", **{"$format": "json"})
    assert single.status_code == 200
    body = single.json()
    assert body.pop("odata.metadata") == f"{client.url}/$metadata#{GOODS}/@Element"
    assert body == row
    missing = client.get(f"{GOODS}(guid'{ZERO}')", **{"$format": "json"})
    status, code, message = error_of(missing)
    assert (status, code) == (404, "9") and GOODS in message


def test_inlinecount_is_a_string_and_ignores_top_and_skip(client):
    body = client.get(GOODS, **{"$format": "json", "$inlinecount": "allpages", "$top": "5"}).json()
    assert body["odata.count"] == str(len(body["value"])) and len(body["value"]) > 5


def test_json_without_metadata_and_atom_without_format(client):
    bare = client.get(GOODS, **{"$format": "application/json;odata=nometadata", "$top": "2"}).json()
    assert list(bare) == ["value"] and len(bare["value"]) == 2
    atom = client.get(GOODS, **{"$top": "3"})
    assert atom.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(atom.content)
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 3
    accept = client.http.get(
        client.url_of(GOODS, **{"$top": "1"}), headers={"Accept": "application/json"}
    )
    assert accept.json()["value"][0]["Ref_Key"]


def test_query_syntax_1c_refuses(client):
    plus = client.http.get(f"{client.url}/{quote(GOODS)}?$format=json&$filter=IsFolder+eq+false")
    status, code, _ = error_of(plus)
    assert (status, code) == (400, "14")
    for bad in ("Ref_Key eqq guid'x'", "IsFolder eq", "(IsFolder eq true", "Code eq 5"):
        assert error_of(client.get(GOODS, **{"$format": "json", "$filter": bad}))[:2] == (400, "14")
    assert error_of(client.get(GOODS, **{"$format": "json", "$filter": "tolower(Code) eq 'x'"}))[
        :2
    ] == (400, "21")
    assert error_of(client.get(GOODS, **{"$format": "json", "$top": "-1"}))[:2] == (400, "14")


# ----- publication and metadata ---------------------------------------------------------------
def test_unpublished_object_is_code_6_and_absent_from_metadata(emu, client):
    emu.control.unpublish(["Catalog_Склады"])
    status, code, message = error_of(client.get("Catalog_Склады", **{"$format": "json"}))
    assert (status, code) == (404, "6") and "Catalog_Склады" in message
    metadata = client.get("$metadata").text
    assert 'Name="Catalog_Склады"' not in metadata
    assert 'NavigationProperty Name="Склад"' not in metadata  # the order's link to it is gone
    assert 'Name="Склад_Key" Type="Edm.Guid"' in metadata  # the reference itself stays
    emu.control.publish(["Catalog_Склады"])
    assert client.get("Catalog_Склады", **{"$format": "json"}).status_code == 200


def test_metadata_declares_entity_types_with_their_edm_types(client):
    response = client.get("$metadata")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/xml"
    )
    schema = ET.fromstring(response.content).find(
        "{http://schemas.microsoft.com/ado/2007/06/edmx}DataServices/" + EDM + "Schema"
    )

    def props(kind: str, name: str) -> dict[str, str]:
        node = schema.find(f"{EDM}{kind}[@Name='{name}']")
        assert node is not None, name
        return {p.get("Name"): p.get("Type") for p in node.findall(f"{EDM}Property")}

    assert props("EntityType", GOODS) == {
        "Ref_Key": "Edm.Guid", "DataVersion": "Edm.String", "DeletionMark": "Edm.Boolean",
        "Parent_Key": "Edm.Guid", "IsFolder": "Edm.Boolean", "Code": "Edm.String",
        "Description": "Edm.String", "Артикул": "Edm.String", "НаименованиеПолное": "Edm.String",
        "ЕдиницаИзмерения_Key": "Edm.Guid", "СтавкаНДС_Key": "Edm.Guid",
        "ВидНоменклатуры_Key": "Edm.Guid", "Predefined": "Edm.Boolean",
        "PredefinedDataName": "Edm.String",
    }  # fmt: skip
    order = props("EntityType", ORDERS)
    assert order["Date"] == "Edm.DateTime" and order["СуммаДокумента"] == "Edm.Double"
    assert order["Товары"] == f"Collection(StandardODATA.{ORDERS}_Товары_RowType)"
    assert props("ComplexType", f"{ORDERS}_Товары_RowType")["LineNumber"] == "Edm.Int64"
    assert props("ComplexType", f"{STOCK}_Balance")["ВНаличииBalance"] == "Edm.Double"
    container = schema.find(f"{EDM}EntityContainer")
    functions = {
        (f.get("Name"), f.find(f"{EDM}Parameter[@Name='bindingParameter']").get("Type"))
        for f in container.findall(f"{EDM}FunctionImport")
    }
    assert ("SliceLast", f"StandardODATA.{PRICES}_RecordType") in functions
    assert ("Balance", f"StandardODATA.{STOCK}") in functions
    assert ("Post", f"StandardODATA.{ORDERS}") in functions
    sets = {s.get("Name") for s in container.findall(f"{EDM}EntitySet")}
    assert {GOODS, ORDERS, f"{ORDERS}_Товары", PRICES, f"{PRICES}_RecordType", STOCK} <= sets


# ----- registers and virtual tables -----------------------------------------------------------
def test_slice_last_is_the_latest_record_of_each_good_and_price_type(emu, client):
    records = read_all(client, f"{PRICES}_RecordType", top=500)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        latest[(record["ВидЦены_Key"], record["Номенклатура_Key"])] = record  # in period order
    price_types = [r["Ref_Key"] for r in client.rows("Catalog_ВидыЦен")]
    for price_type in price_types:
        condition = f"Condition='ВидЦены_Key eq guid''{price_type}'''"
        rows = read_all(client, f"{PRICES}_RecordType/SliceLast({condition})", top=100)
        assert {r["Номенклатура_Key"]: r["Цена"] for r in rows} == {
            good: r["Цена"] for (kind, good), r in latest.items() if kind == price_type
        }
    # The record-set name answers too, and a period before yesterday's change gives old prices.
    periods = sorted({r["Period"] for r in records})
    old = client.rows(f"{PRICES}/SliceLast(Period=datetime'{periods[0]}')")
    first = {
        (r["ВидЦены_Key"], r["Номенклатура_Key"]): r["Цена"]
        for r in records
        if r["Period"] == periods[0]
    }
    assert {(r["ВидЦены_Key"], r["Номенклатура_Key"]): r["Цена"] for r in old} == first
    earliest = client.rows(f"{PRICES}_RecordType/SliceFirst()")
    assert {(r["ВидЦены_Key"], r["Номенклатура_Key"]): r["Цена"] for r in earliest} == first
    changed = emu.control.change_prices(2)
    new = client.rows(
        f"{PRICES}_RecordType/SliceLast()",
        **{"$filter": guid_filter(changed["ids"], "Номенклатура_Key")},
    )
    assert {r["Recorder_Key"] for r in new} == {changed["recorder"]} and len(new) == 4


def test_balance_matches_the_stored_stock(emu, client):
    stored = emu.control.stock_rows()
    resources = ("ВНаличии", "ВРезервеСоСклада", "ВРезервеПодЗаказ")

    def balance(row: dict[str, Any]) -> tuple[float, ...]:
        return tuple(row[f"{name}Balance"] for name in resources)

    by_pair = {
        (r["Номенклатура_Key"], r["Склад_Key"]): tuple(r[n] for n in resources)
        for r in stored
        if any(r[n] for n in resources)
    }
    rows = read_all(client, f"{STOCK}/Balance(Dimensions='Номенклатура,Склад')", top=100)
    assert {(r["Номенклатура_Key"], r["Склад_Key"]): balance(r) for r in rows} == by_pair
    assert all(
        set(r) == {"Номенклатура_Key", "Склад_Key", *(f"{n}Balance" for n in resources)}
        for r in rows
    )
    by_good: dict[str, list[float]] = {}
    for (good, _), values in by_pair.items():
        sums = by_good.setdefault(good, [0.0, 0.0, 0.0])
        for i, value in enumerate(values):
            sums[i] += value
    per_good = client.rows(f"{STOCK}/Balance(Dimensions='Номенклатура')")
    assert {r["Номенклатура_Key"]: list(balance(r)) for r in per_good} == by_good
    by_warehouse: dict[str, float] = {}
    for (_, warehouse), values in by_pair.items():
        by_warehouse[warehouse] = by_warehouse.get(warehouse, 0) + values[0]
    per_warehouse = client.rows(f"{STOCK}/Balance(Dimensions='Склад')")
    assert {r["Склад_Key"]: r["ВНаличииBalance"] for r in per_warehouse} == by_warehouse
    warehouse = stored[0]["Склад_Key"]
    in_one = client.rows(f"{STOCK}/Balance(Condition='Склад_Key eq guid''{warehouse}''')")
    assert {r["Номенклатура_Key"] for r in in_one} == {g for g, w in by_pair if w == warehouse}
    changed = emu.control.change_stock(1)[0]
    pair = (
        f"Номенклатура_Key eq guid'{changed['Номенклатура_Key']}' "
        f"and Склад_Key eq guid'{changed['Склад_Key']}'"
    )
    again = client.rows(f"{STOCK}/Balance()", **{"$filter": pair})
    assert [r["ВНаличииBalance"] for r in again] == [changed["ВНаличии"]]


def test_balance_delay_is_configurable(emu, client):
    emu.control.set_balance_delay(0.4)
    started = time.monotonic()
    assert client.get(f"{STOCK}/Balance()", **{"$format": "json", "$top": "1"}).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    client.rows("Catalog_Склады")
    assert time.monotonic() - started < 0.4


def test_barcodes_by_goods_keys(client):
    barcodes = client.rows("InformationRegister_ШтрихкодыУпаковокТоваров")
    goods = sorted({r["Номенклатура_Key"] for r in barcodes})[:4]
    found = client.rows(
        "InformationRegister_ШтрихкодыУпаковокТоваров",
        **{"$filter": guid_filter(goods, "Номенклатура_Key")},
    )
    assert sorted(r["Штрихкод"] for r in found) == sorted(
        r["Штрихкод"] for r in barcodes if r["Номенклатура_Key"] in goods
    )
    assert all(len(r["Штрихкод"]) == 13 and r["Штрихкод"].startswith("460") for r in barcodes)


# ----- writing ------------------------------------------------------------------------------------
def new_order(client: OData, **extra: Any) -> dict[str, Any]:
    goods = client.rows(
        GOODS, **{"$filter": "IsFolder eq false and DeletionMark eq false", "$top": "2"}
    )
    customer = client.rows("Catalog_Контрагенты", **{"$top": "1"})[0]["Ref_Key"]
    warehouse = client.rows("Catalog_Склады", **{"$top": "1"})[0]["Ref_Key"]
    return {
        "Date": "2025-06-02T12:30:00",
        "Контрагент_Key": customer,
        "Склад_Key": warehouse,
        "Статус": "КОбеспечению",
        "НомерПоДаннымКлиента": "WEB-777",
        # LineNumber as 1C writes it (a string) and as a number: both are taken.
        "Товары": [
            {"LineNumber": "1", "Номенклатура_Key": goods[0]["Ref_Key"],
             "Количество": 2, "Цена": 150.5, "Сумма": 301},
            {"LineNumber": 2, "Номенклатура_Key": goods[1]["Ref_Key"],
             "Количество": 1, "Цена": 99, "Сумма": 99},
        ],
        **extra,
    }  # fmt: skip


def test_post_order_returns_201_with_location_then_posting_sets_posted(emu, client):
    response = client.post(ORDERS, new_order(client))
    assert response.status_code == 201, response.text
    order = response.json()
    key = order["Ref_Key"]
    assert response.headers["location"] == f"{client.url}/{ORDERS}(guid'{key}')"
    assert order["Posted"] is False and order["Number"].startswith("ТД00-")
    assert order["СуммаДокумента"] == 400 and [line["LineNumber"] for line in order["Товары"]] == [
        "1",
        "2",
    ]
    assert all(line["Ref_Key"] == key for line in order["Товары"])
    stored = httpx.get(response.headers["location"] + "?$format=json", auth=(USER, PASSWORD)).json()
    assert {k: v for k, v in stored.items() if k != "odata.metadata"} == {
        k: v for k, v in order.items() if k != "odata.metadata"
    }
    posted = client.http.post(
        client.url_of(f"{ORDERS}(guid'{key}')/Post", PostingModeOperational="false")
    )
    assert posted.status_code == 200
    after = client.get(f"{ORDERS}(guid'{key}')", **{"$format": "json"}).json()
    assert after["Posted"] is True and after["DataVersion"] != order["DataVersion"]
    assert [o["Ref_Key"] for o in emu.control.created_orders()] == [key]


def test_armed_posting_failure_is_500_code_minus_1_in_russian(emu, client):
    key = client.post(ORDERS, new_order(client)).json()["Ref_Key"]
    emu.control.arm_posting_failure()
    url = client.url_of(f"{ORDERS}(guid'{key}')/Post", PostingModeOperational="false")
    status, code, message = error_of(client.http.post(url))
    assert (status, code) == (500, "-1")
    assert (
        message.startswith('Не удалось провести "Заказ клиента ')
        and "Недостаточно товара" in message
    )
    assert client.get(f"{ORDERS}(guid'{key}')", **{"$format": "json"}).json()["Posted"] is False
    assert client.http.post(url).status_code == 200  # armed once: the retry posts


def test_tabular_rows_need_a_line_number(emu, client):
    order = new_order(client)
    del order["Товары"][1]["LineNumber"]
    status, code, message = error_of(client.post(ORDERS, order))
    assert (status, code) == (400, "5") and "LineNumber" in message
    assert emu.control.created_orders() == []


def test_patch_returns_the_whole_object_with_a_new_data_version(client):
    key = client.post(ORDERS, new_order(client)).json()["Ref_Key"]
    before = client.get(f"{ORDERS}(guid'{key}')", **{"$format": "json"}).json()
    response = client.patch(f"{ORDERS}(guid'{key}')", {"Комментарий": "Позвонить заранее"})
    assert response.status_code == 200
    after = response.json()
    assert (
        after["Комментарий"] == "Позвонить заранее"
        and after["DataVersion"] != before["DataVersion"]
    )
    unchanged = set(before) - {"Комментарий", "DataVersion"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    status, code, _ = error_of(
        client.patch(f"{ORDERS}(guid'{key}')", {"Контрагент_Key": "не гуид"})
    )
    assert (status, code) == (400, "1")


# ----- auth, faults, rights, controls -----------------------------------------------------------
def test_basic_auth_needs_utf8_credentials(emu):
    url = f"{emu.odata_url}/{quote(GOODS)}?$format=json&$top=1"
    assert httpx.get(url, auth=(USER, PASSWORD)).status_code == 200
    pair = f"{USER}:{PASSWORD}"
    for wrong in (
        pair.encode("cp1251"),  # a Windows client's code page
        pair.encode().decode("latin-1").encode(),  # UTF-8 read back as Latin-1
        f"{USER}:неверный".encode(),
    ):
        header = {"Authorization": "Basic " + base64.b64encode(wrong).decode()}
        response = httpx.get(url, headers=header)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.headers["content-type"].startswith("text/html")
    assert httpx.get(url).status_code == 401


def test_fault_pages_of_the_web_server_for_the_next_requests(emu, client):
    emu.control.inject_fault(502, count=2)
    for _ in range(2):
        response = client.get(GOODS, **{"$format": "json"})
        assert response.status_code == 502 and response.headers["content-type"].startswith(
            "text/html"
        )
        assert "<title>502 Bad Gateway</title>" in response.text
    assert client.get(GOODS, **{"$format": "json", "$top": "1"}).status_code == 200
    emu.control.inject_fault(503, path="Catalog_Склады")
    assert client.get(GOODS, **{"$format": "json", "$top": "1"}).status_code == 200
    assert client.get("Catalog_Склады", **{"$format": "json"}).status_code == 503
    emu.control.inject_fault(401)
    unauthorised = client.get(GOODS, **{"$format": "json"})
    assert unauthorised.status_code == 401 and "www-authenticate" in unauthorised.headers
    emu.control.inject_fault(500)
    assert error_of(client.get(GOODS, **{"$format": "json"}))[:2] == (500, "-1")
    emu.control.inject_fault(503, body="<html>maintenance</html>", delay=0.2)
    started = time.monotonic()
    assert client.get(GOODS, **{"$format": "json"}).text == "<html>maintenance</html>"
    assert time.monotonic() - started >= 0.2
    emu.control.inject_fault(drop=True)
    with pytest.raises(httpx.TransportError):
        client.get(GOODS, **{"$format": "json"})
    assert emu.control.counters()["faults_served"] == {
        "502": 2,
        "503": 2,
        "401": 1,
        "500": 1,
        "drop": 1,
    }


def test_read_rights_code_20_and_allowed_only(emu, client):
    emu.control.deny_read("Catalog_Склады")
    assert error_of(client.get("Catalog_Склады", **{"$format": "json"}))[:2] == (403, "20")
    keys = [r["Ref_Key"] for r in client.rows(GOODS, **{"$select": "Ref_Key"})]
    emu.control.deny_read(GOODS, ids=keys[:3])
    assert error_of(client.get(GOODS, **{"$format": "json"}))[:2] == (403, "20")
    allowed = client.rows(GOODS, **{"$select": "Ref_Key", "allowedOnly": "true"})
    assert [r["Ref_Key"] for r in allowed] == keys[3:]
    # A page without restricted rows is served without allowedOnly too.
    assert len(client.rows(GOODS, **{"$skip": "3", "$top": "5"})) == 5
    single = client.get(f"{GOODS}(guid'{keys[0]}')", **{"$format": "json"})
    assert error_of(single)[:2] == (403, "20")
    emu.control.deny_read(STOCK)
    balance = client.get(f"{STOCK}/Balance()", **{"$format": "json", "allowedOnly": "true"})
    assert error_of(balance)[:2] == (403, "20")


def test_iis_in_front_refuses_a_long_query_string_with_its_own_page():
    with ODataEmulatorServer(items=40, web_server="iis", max_query_length=2048) as iis:
        client = OData(iis)  # no credentials configured: any are let through
        keys = [r["Ref_Key"] for r in client.rows(GOODS, **{"$select": "Ref_Key"})]
        assert len(client.rows(GOODS, **{"$filter": guid_filter(keys[:10])})) == 10
        response = client.get(GOODS, **{"$format": "json", "$filter": guid_filter(keys)})
        assert response.status_code == 404
        assert response.headers["server"] == "Microsoft-IIS/10.0"
        assert response.headers["content-type"].startswith("text/html")
        assert "404.15" in response.text
        client.http.close()


def test_controls_need_the_key_and_json(emu):
    url = f"{emu.root_url}/_control/stats"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"X-Control-Key": "wrong"}).status_code == 403
    assert httpx.get(url, headers={"X-Control-Key": CONTROL_KEY}).status_code == 200
    form = httpx.post(
        f"{emu.root_url}/_control/items/change",
        headers={"X-Control-Key": CONTROL_KEY},
        content=b"count=1",
        params=None,
    )
    assert form.status_code == 415


def test_added_goods_appear_with_a_barcode_and_prices(emu, client):
    total = int(client.get(f"{GOODS}/$count").text)
    added = emu.control.add_items(2)
    assert int(client.get(f"{GOODS}/$count").text) == total + 2
    prices = client.rows(
        f"{PRICES}_RecordType/SliceLast()", **{"$filter": guid_filter(added, "Номенклатура_Key")}
    )
    assert len(prices) == 4
    # Added without stock: no balance of theirs.
    balance = f"{STOCK}/Balance(Dimensions='Номенклатура,Склад')"
    assert client.rows(balance, **{"$filter": guid_filter(added, "Номенклатура_Key")}) == []


def test_added_goods_can_be_received_in_every_warehouse(emu, client):
    [added] = emu.control.add_items(1, stock=5)
    rows = client.rows(
        f"{STOCK}/Balance(Dimensions='Номенклатура,Склад')",
        **{"$filter": guid_filter([added], "Номенклатура_Key")},
    )
    warehouses = {w["Ref_Key"] for w in client.rows("Catalog_Склады")}
    assert sorted((r["Склад_Key"], r["ВНаличииBalance"]) for r in rows) == sorted(
        (w, 5) for w in warehouses
    )
    refused = httpx.post(
        f"{emu.root_url}/_control/items/add",
        headers={"X-Control-Key": CONTROL_KEY},
        json={"count": 1, "stock": "много"},
    )
    assert refused.status_code == 400 and "stock must be a number" in refused.text
    negative = httpx.post(
        f"{emu.root_url}/_control/items/add",
        headers={"X-Control-Key": CONTROL_KEY},
        json={"count": 1, "stock": -1},
    )
    assert negative.status_code == 400 and "stock must be between 0 and 1e9" in negative.text


def test_a_fault_armed_with_a_query_that_is_not_text_is_refused(emu):
    refused = httpx.post(
        f"{emu.root_url}/_control/faults",
        headers={"X-Control-Key": CONTROL_KEY},
        json={"status": 500, "query": ["Ref_Key"]},
    )
    assert refused.status_code == 400 and "query must be a string" in refused.text
    assert emu.control.stats()["faults"] == []


def test_command_line_emulator_serves_the_same_data():
    with ODataEmulatorProcess(items=40, username=USER, password=PASSWORD) as process:
        rows = httpx.get(
            f"{process.odata_url}/{quote(GOODS)}?$format=json&$select=Ref_Key",
            auth=(USER, PASSWORD),
        ).json()["value"]
        assert rows == [
            {"Ref_Key": key} for key in Infobase(ODataEmulatorOptions(items=40)).goods.ref_keys()
        ]


def test_emulator_process_takes_a_key_and_a_password_that_begin_with_a_dash():
    """A generated control key begins with "-" one time in 64; argparse took it for an option
    and the process did not start."""
    with ODataEmulatorProcess(
        items=10, username="-кладовщик", password="-пароль", control_key="-k"
    ) as process:
        answer = httpx.get(
            f"{process.odata_url}/{quote(GOODS)}/$count",
            auth=("-кладовщик".encode(), "-пароль".encode()),
        )
        # The Basic user and the control key both arrived whole.
        assert answer.text == str(process.control.stats()["rows"][GOODS]) == "13"


def _memory_kept_by_an_infobase(items: int) -> int:
    """Bytes an infobase of `items` goods keeps; the least of two builds, because tracemalloc
    also counts what a thread left running by an earlier test allocates meanwhile."""
    kept = []
    for _ in range(2):
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            infobase = Infobase(ODataEmulatorOptions(items=items))
            gc.collect()
            kept.append(tracemalloc.get_traced_memory()[0] - before)
        finally:
            tracemalloc.stop()
        assert len(infobase.goods) > items
        del infobase
    return min(kept)


def test_stored_goods_take_under_a_kilobyte_each():
    """A million goods must fit: everything kept per good (its row, barcodes, prices, stock,
    its share of orders) stays under 1 KB, over-allocated buffers included. Measured as the
    growth from 2,000 to 6,000 goods, so the fixed part (metadata, small catalogues) that a
    million goods share does not count as if every good carried it."""
    small, large = 2_000, 6_000
    per_good = (_memory_kept_by_an_infobase(large) - _memory_kept_by_an_infobase(small)) / (
        large - small
    )
    assert per_good < 1024, f"{per_good:.0f} bytes a good"
