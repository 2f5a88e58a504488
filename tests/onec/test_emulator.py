"""The emulator keeps the contract: paging, change tracking, orders, auth, faults, controls.

Read with bare httpx on purpose: these tests check the server side, not the client.
"""

from __future__ import annotations

import base64
import gc
import re
import socket
import subprocess
import sys
import tracemalloc
import uuid

import httpx
import pytest

from tradeos_pipelines.emulators.http_service import EmulatorProcess, EmulatorServer
from tradeos_pipelines.emulators.http_service.infobase import EmulatorOptions, Infobase

KEY = {"X-API-Key": "test-key"}


def read_all(
    http: httpx.Client, entity: str, limit: int = 37, **params: str
) -> tuple[list[dict], list[int | None]]:
    rows: list[dict] = []
    totals: list[int | None] = []
    cursor = None
    while True:
        query = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        page = http.get(f"/hs/api/{entity}", params=query).json()
        rows += page["items"]
        totals.append(page.get("total"))
        cursor = page["next_cursor"]
        if cursor is None:
            return rows, totals


@pytest.fixture
def http(emulator: EmulatorServer) -> httpx.Client:
    with httpx.Client(base_url=emulator.base_url, headers=KEY) as client:
        yield client


def test_full_pass_reads_every_row_once_in_keyset_order(emulator, http):
    rows, totals = read_all(http, "nomenclature")
    stats = emulator.control.stats()
    assert len(rows) == stats["rows"]["nomenclature"] == totals[0]
    assert len({r["id"] for r in rows}) == len(rows)
    order = [(r["modified_at"], r["id"]) for r in rows]
    assert order == sorted(order)
    # Three rows share each timestamp: the key breaks the tie.
    assert len({r["modified_at"] for r in rows}) < len(rows)
    assert any(r["is_folder"] for r in rows)
    assert any(r["deleted"] for r in rows)
    assert emulator.control.counters()["rows_served"]["nomenclature"] == len(rows)


def test_changed_since_is_strictly_later_and_finds_changed_rows(emulator, http):
    rows, _ = read_all(http, "nomenclature")
    last = rows[-1]["modified_at"]
    assert http.get("/hs/api/nomenclature", params={"changed_since": last}).json() == {
        "items": [],
        "next_cursor": None,
        "total": 0,
    }
    changed = emulator.control.change_items(3)
    later, totals = read_all(http, "nomenclature", changed_since=last)
    assert sorted(r["id"] for r in later) == sorted(changed)
    assert totals == [3]
    before = {r["id"]: r for r in rows}
    for row in later:
        assert row["version"] != before[row["id"]]["version"]
        assert row["modified_at"] > last


def test_row_modified_mid_pass_is_read_again_never_skipped(emulator, http):
    first = http.get("/hs/api/nomenclature", params={"limit": 50}).json()
    seen = [r["id"] for r in first["items"]]
    # Edit a row already read and one not yet read.
    emulator.control.change_items(ids=[seen[0]])
    everything, _ = read_all(http, "nomenclature", limit=1000)
    rest = http.get(
        "/hs/api/nomenclature", params={"limit": 1000, "cursor": first["next_cursor"]}
    ).json()
    ids = seen + [r["id"] for r in rest["items"]]
    assert ids.count(seen[0]) == 2
    assert set(ids) == {r["id"] for r in everything}


def test_stock_filter_by_warehouse_and_orders_list(emulator, http):
    warehouse = emulator.control.stats()["warehouses"][1]["id"]
    rows, totals = read_all(http, "stock", warehouse_id=warehouse)
    assert rows and all(r["warehouse_id"] == warehouse for r in rows)
    assert totals[0] == len(rows)
    everything, _ = read_all(http, "stock", limit=1000)
    assert len(rows) < len(everything)
    for row in everything[:20]:
        assert row["available"] == row["quantity"] - row["reserved"]
    orders, _ = read_all(http, "orders")
    assert {"id", "number", "external_id", "status", "date", "total", "modified_at"} <= set(
        orders[0]
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"changed_since": "вчера"}, "ГГГГ"),
        ({"changed_since": "2026-01-01T10:00:00+03:00"}, "без часового пояса"),
    ],
)
def test_bad_list_parameters_get_400_with_a_message(http, params, fragment):
    response = http.get("/hs/api/nomenclature", params=params)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def _order(product_id: str, external_id: str | None = None) -> dict:
    return {
        "external_id": external_id or str(uuid.uuid4()),
        "date": "2026-11-20T10:15:36",
        "customer": {"name": "ООО «Ромашка»", "inn": "7701234567"},
        "items": [{"product_id": product_id, "quantity": 2, "price": 1234.5}],
    }


def test_order_creation_is_idempotent_and_validated(emulator, http):
    product = next(r for r in read_all(http, "nomenclature", limit=1000)[0] if not r["is_folder"])
    body = _order(product["id"])
    created = http.post("/hs/api/orders", json=body)
    assert created.status_code == 201
    assert created.json()["external_id"] == body["external_id"]
    again = http.post("/hs/api/orders", json=body)
    assert again.status_code == 409
    assert again.json() == {"error": "duplicate", **created.json()}
    assert len(emulator.control.orders(body["external_id"])) == 1
    unknown = str(uuid.uuid4())
    refused = http.post("/hs/api/orders", json=_order(unknown))
    assert refused.status_code == 422
    assert refused.json()["message"] == f"Номенклатура не найдена: {unknown}"
    assert emulator.control.counters()["orders_created"] == 1


def test_auth_modes_and_cyrillic_basic_user(emulator_factory):
    server = emulator_factory(api_key=None, basic=("Администратор", "пароль"))
    token = base64.b64encode("Администратор:пароль".encode()).decode()
    url = server.base_url + "/hs/api/health"
    assert httpx.get(url, headers={"Authorization": f"Basic {token}"}).status_code == 200
    wrong = base64.b64encode("Администратор:нет".encode()).decode()
    denied = httpx.get(url, headers={"Authorization": f"Basic {wrong}"})
    assert denied.status_code == 401
    assert httpx.get(url).status_code == 401


def test_wrong_api_key_is_403(emulator):
    response = httpx.get(emulator.base_url + "/hs/api/health", headers={"X-API-Key": "nope"})
    assert response.status_code == 403


def test_any_publication_prefix_and_unknown_paths(emulator):
    root = emulator.root_url
    assert httpx.get(root + "/other/base/hs/api/health", headers=KEY).status_code == 200
    assert httpx.get(root + "/hs/api/health", headers=KEY).status_code == 200
    assert httpx.get(root + "/trade/hs/api/nothing", headers=KEY).status_code == 404
    assert httpx.get(root + "/trade/ws/other", headers=KEY).status_code == 404


def test_faults_are_served_to_the_next_matching_requests(emulator, http):
    control = emulator.control
    control.inject_fault("500", path="/stock")
    control.inject_fault("429", retry_after=7, path="/health")
    assert http.get("/hs/api/nomenclature").status_code == 200
    failed = http.get("/hs/api/stock")
    assert failed.status_code == 500 and "лицензий" in failed.text
    busy = http.get("/hs/api/health")
    assert busy.status_code == 429 and busy.headers["retry-after"] == "7"
    assert http.get("/hs/api/health").status_code == 200
    control.inject_fault("502")
    assert "<title>502 Bad Gateway</title>" in http.get("/hs/api/health").text
    control.inject_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/hs/api/health")
    control.inject_fault("truncated", path="/nomenclature")
    cut = http.get("/hs/api/nomenclature")
    assert cut.status_code == 200 and not cut.text.rstrip().endswith("}")
    assert control.counters()["faults_served"] == {
        "500": 1,
        "429": 1,
        "502": 1,
        "drop": 1,
        "truncated": 1,
    }


def test_quirks_mode_sends_what_real_1c_sends(emulator, http):
    emulator.control.set_quirks(True)
    raw = http.get("/hs/api/nomenclature", params={"limit": 1000})
    assert raw.content.startswith(b"\xef\xbb\xbf")
    text = raw.content.decode("utf-8-sig")
    assert "00000000-0000-0000-0000-000000000000" in text  # top-level folders
    assert "\u00a0" in text  # "1 234,50" with a no-break space
    orders = http.get("/hs/api/orders", params={"limit": 1000}).content.decode("utf-8-sig")
    assert "0001-01-01T00:00:00" in orders


def test_bad_rows_are_appended_for_the_parsers_to_reject(emulator, http):
    made = emulator.control.inject_bad_rows("no_id")
    assert "id" not in made[0]
    emulator.control.inject_bad_rows("bad_price", count=2)
    rows, _ = read_all(http, "nomenclature", limit=1000)
    assert sum(1 for r in rows if r.get("price") == "abc") == 2
    assert sum(1 for r in rows if "id" not in r) == 1


def test_reset_restores_the_generated_catalogue(emulator, http):
    before, _ = read_all(http, "nomenclature", limit=1000)
    emulator.control.change_items(5)
    emulator.control.reset()
    after, _ = read_all(http, "nomenclature", limit=1000)
    assert after == before


def test_controls_need_the_key_json_and_a_bounded_count():
    with EmulatorServer(items=20, api_key="test-key", control_key="control-key") as server:
        url = f"{server.root_url}/_control/items/change"
        key = {"X-Control-Key": "control-key"}
        assert httpx.get(f"{server.root_url}/_control/stats").json() == {
            "error": "X-Control-Key is missing or wrong"
        }
        wrong = httpx.post(url, json={"count": 1}, headers={"X-Control-Key": "guess"})
        assert wrong.status_code == 403
        # What a cross-site page can post without a CORS preflight: text/plain and forms.
        plain = httpx.post(
            url, content=b'{"count": 1}', headers={**key, "Content-Type": "text/plain"}
        )
        assert (plain.status_code, plain.json()) == (
            415,
            {"error": "control bodies must be application/json"},
        )
        huge = httpx.post(url, json={"count": 10**9}, headers=key)
        assert (huge.status_code, huge.json()) == (
            400,
            {"error": "count must be between 0 and 100000, got 1000000000"},
        )
        assert server.control.counters()["requests"] == {}  # nothing was changed or served
        assert len(httpx.post(url, json={"count": 2}, headers=key).json()["ids"]) == 2


def test_controls_are_off_without_a_control_key():
    with EmulatorServer(items=5, api_key="test-key", control_key=None) as server:
        answer = httpx.post(f"{server.root_url}/_control/reset", headers={"X-Control-Key": ""})
        assert (answer.status_code, answer.json()) == (
            403,
            {"error": "controls are off: start the emulator with --control-key KEY to use them"},
        )


def test_command_line_emulator_process_serves_the_same_catalogue(emulator):
    with EmulatorProcess(items=200, warehouses=3, api_key="k") as process:
        other = httpx.get(
            process.base_url + "/hs/api/nomenclature",
            params={"limit": 5},
            headers={"X-API-Key": "k"},
        ).json()
    mine = httpx.get(
        emulator.base_url + "/hs/api/nomenclature", params={"limit": 5}, headers=KEY
    ).json()
    assert other == mine


def test_emulator_process_takes_a_key_and_a_password_that_begin_with_a_dash():
    """A generated control key begins with "-" one time in 64; argparse took it for an option
    and the process did not start."""
    with EmulatorProcess(items=10, basic=("-кладовщик", "-пароль"), control_key="-k") as process:
        answer = httpx.get(
            process.base_url + "/hs/api/nomenclature",
            params={"limit": 1},
            auth=("-кладовщик".encode(), "-пароль".encode()),
        )
        assert answer.status_code == 200
        # The control key works: the emulator counted exactly that one call.
        assert process.control.counters()["requests"] == {"GET /hs/api/nomenclature": 1}


def test_the_catalogue_is_kept_right_sized_in_memory():
    """orjson's output keeps a ~4 KB buffer; the store must keep each row at its own size."""
    items = 2000
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        infobase = Infobase(EmulatorOptions(items=items, warehouses=3))
        gc.collect()
        kept = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    rows = sum(len(infobase.store(entity)) for entity in ("nomenclature", "stock", "orders"))
    assert rows > items
    # A goods row is ~400 bytes of JSON; with its key and index entry well under 1 KB a row.
    # Before the fix it was over 4 KB a row.
    assert kept / rows < 1024, f"{kept / rows:.0f} bytes a row"


def test_the_command_line_emulator_accepts_connections_once_it_prints_its_url():
    """Scripts connect as soon as they read the URL: the port must be listening by then."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradeos_pipelines.emulators.http_service",
            "--port",
            "0",
            "--items",
            "50",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://([^:/\s]+):(\d+)", line)
        assert match, line
        # No retry: the connection must be taken (queued) at once.
        socket.create_connection((match.group(1), int(match.group(2))), timeout=5).close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
