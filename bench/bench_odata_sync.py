"""Benchmark of the nomenclature sync over the standard OData interface (issue #11), each
number beside its floor in the same run:

- full sync of N goods (OData emulator in its own process)         goal ≤ 2× the floor
- floor: bare httpx read of the same pages + COPY: each Catalog_Номенклатура page ($top/$skip)
  and the barcode and price pages the engine reads for it; ``floor_goods_only`` reads the
  goods pages alone
- incremental with 100 changed of N: time, rows and bytes 1C served (the Ref_Key,DataVersion
  pass plus the changed rows and their barcodes and prices)
- peak RSS of a child process running a full sync, and of one running the incremental sync
  after 100 changed (``--rss-items``; 0 skips both)

Run: ``.venv/bin/python bench/bench_odata_sync.py`` (``--items``, ``--rss-items``).
Servers: ``TRADEOS_TEST_POSTGRES_URL`` (admin URL; a dedicated database is created and dropped)
and ``TRADEOS_TEST_REDIS_URL`` (keys under a bench namespace). Results: stdout and
``bench/results/odata_sync.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._integrations import add_integrations  # noqa: E402
from bench._memory import peak_rss_kb  # noqa: E402

USER, PASSWORD = "Администратор", "пароль"
PAGE_SIZE = 1000
GOODS = "Catalog_Номенклатура"
BARCODES = "InformationRegister_ШтрихкодыУпаковокТоваров"
PRICES = "InformationRegister_ЦеныНоменклатуры25_RecordType"
SELECT = (
    "Ref_Key,DataVersion,DeletionMark,Parent_Key,IsFolder,Code,Description,Артикул,"
    "НаименованиеПолное,ЕдиницаИзмерения_Key,СтавкаНДС_Key"
)


def _env(admin_url: str, redis_url: str, database: str) -> dict[str, str]:
    from tradeos_pipelines.core.secrets import new_secret_key

    url = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    return {
        "TRADEOS_DATABASE_URL": url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_REDIS_NAMESPACE": f"tradeos-bench-{database}",
        "TRADEOS_SECRET_KEY": new_secret_key(),
    }


def _add_integration(integration_id: str, base_url: str, price_type: str) -> None:
    add_integrations(
        [integration_id],
        base_url,
        {"username": USER, "password": PASSWORD},
        page_size=PAGE_SIZE,
        protocol="odata",
        options={"price_type_key": price_type, "price_register": "11.5"},
    )


def _served(emulator: Any) -> tuple[int, int]:
    counters = emulator.control.counters()
    return sum(counters["rows_served"].values()), int(counters["bytes_served"]["total"])


def _price_type(odata_url: str) -> str:
    response = httpx.get(
        odata_url + "/Catalog_ВидыЦен",
        params={"$format": "json"},
        auth=(USER.encode(), PASSWORD.encode()),
    )
    return next(r["Ref_Key"] for r in response.json()["value"] if r["Description"] == "Розничная")


def bench_engine(items: int) -> dict[str, Any]:
    """Full, then incremental syncs of ``items`` through the engine; the floor beside them."""
    from tradeos_pipelines.emulators.odata import ODataEmulatorProcess
    from tradeos_pipelines.engine import sync_nomenclature

    out: dict[str, Any] = {}
    with ODataEmulatorProcess(items=items, username=USER, password=PASSWORD) as emulator:
        price_type = _price_type(emulator.odata_url)
        _add_integration("bench", emulator.base_url, price_type)
        out["floor_goods_only"] = bench_floor(emulator.odata_url)
        out["floor"] = bench_floor(emulator.odata_url, price_type)
        started = time.perf_counter()
        full = sync_nomenclature("bench", full=True)
        seconds = time.perf_counter() - started
        out["full"] = {
            "seconds": round(seconds, 3),
            "engine_seconds": full.duration_s,
            "created": full.created,
            "fetched": full.fetched,
            "ratio_to_floor": round(seconds / out["floor"]["seconds"], 2),
            "ratio_to_floor_goods_only": round(seconds / out["floor_goods_only"]["seconds"], 2),
        }
        emulator.control.change_items(100)
        rows, sent = _served(emulator)
        started = time.perf_counter()
        incremental = sync_nomenclature("bench")
        rows_after, sent_after = _served(emulator)
        out["incremental"] = {
            "seconds": round(time.perf_counter() - started, 3),
            "engine_seconds": incremental.duration_s,
            "updated": incremental.updated,
            "fetched": incremental.fetched,
            "rows_served": rows_after - rows,
            "bytes_served": sent_after - sent,
        }
    return out


def bench_floor(odata_url: str, price_type: str | None = None) -> dict[str, Any]:
    """Bare httpx reading every goods page ($top/$skip, the same $select), then COPY.

    With ``price_type``, also the other pages the engine reads for each page of goods: its
    barcodes and its prices (by the page's key range), one after the other, not joined.
    """
    dsn = make_url(os.environ["TRADEOS_DATABASE_URL"]).set(drivername="postgresql")
    conn = psycopg2.connect(dsn.render_as_string(hide_password=False))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_floor (r jsonb)")
        cur.execute("TRUNCATE bench_floor")
    read = copy = 0.0
    rows = skip = register_rows = 0
    auth = (USER.encode(), PASSWORD.encode())
    with httpx.Client(base_url=odata_url + "/", auth=auth, timeout=60) as http:
        while True:
            started = time.perf_counter()
            query = (
                f"$format=json&allowedOnly=true&$select={SELECT}&$orderby=Ref_Key"
                f"&$top={PAGE_SIZE}&$skip={skip}"
            )
            page = orjson.loads(http.get(f"{GOODS}?{query}").content)["value"]
            if page and price_type is not None:
                for resource in _register_pages(page, price_type):
                    register_rows += len(orjson.loads(http.get(resource).content)["value"])
            read += time.perf_counter() - started
            started = time.perf_counter()
            data = b"\n".join(orjson.dumps(item) for item in page)
            if page:
                with conn.cursor() as cur:
                    cur.copy_expert(
                        "COPY bench_floor (r) FROM STDIN",
                        io.BytesIO(data.replace(b"\\", b"\\\\")),
                    )
            copy += time.perf_counter() - started
            rows += len(page)
            if len(page) < PAGE_SIZE:
                break
            skip += PAGE_SIZE
    conn.close()
    return {
        "seconds": round(read + copy, 3),
        "read_seconds": round(read, 3),
        "copy_seconds": round(copy, 3),
        "rows": rows,
        "register_rows": register_rows,
    }


def _register_pages(page: list[dict[str, Any]], price_type: str) -> list[str]:
    """The barcode and price requests of one page of goods, as the client asks them."""
    first, last = page[0]["Ref_Key"], page[-1]["Ref_Key"]
    keys = f"Номенклатура_Key ge guid'{first}' and Номенклатура_Key le guid'{last}'"
    condition = f"ВидЦены_Key eq guid'{price_type}' and ({keys})".replace("'", "''")
    common = "$format=json&allowedOnly=true"
    return [
        f"{BARCODES}?{common}&$select=Штрихкод,Номенклатура_Key&$filter={quote(keys)}",
        f"{PRICES}/SliceLast(Condition='{condition}')?{common}&$select=Номенклатура_Key,Цена",
    ]


def bench_memory(items: int) -> dict[str, Any]:
    """Peak RSS of a child process running one full sync of ``items`` goods, then of another
    running the incremental sync after 100 of them changed."""
    from tradeos_pipelines.emulators.odata import ODataEmulatorProcess

    out: dict[str, Any] = {"items": items}
    with ODataEmulatorProcess(items=items, username=USER, password=PASSWORD) as emulator:
        _add_integration("bench-big", emulator.base_url, _price_type(emulator.odata_url))
        out["full"] = _child_sync("bench-big", full=True)
        emulator.control.change_items(100)
        out["incremental"] = _child_sync("bench-big", full=False)
    return out


def _child_sync(integration_id: str, *, full: bool) -> dict[str, Any]:
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--child-sync", integration_id, *(["--full"] if full else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the child sync failed: {child.stderr[-2000:]}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return {"seconds": round(time.perf_counter() - started, 1), **report}


def child_sync(integration_id: str, *, full: bool) -> None:
    from tradeos_pipelines.engine import sync_nomenclature

    result = sync_nomenclature(integration_id, full=full)
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "engine_seconds": result.duration_s,
                "created": result.created,
                "updated": result.updated,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rss-items", type=int, default=0, help="0: skip the RSS run")
    parser.add_argument("--child-sync", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        child_sync(args.child_sync, full=args.full)
        return

    from tradeos_pipelines.core.settings import get_settings, normalize_database_url

    admin_url = normalize_database_url(
        os.environ.get("TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    database = f"bench_odata_{secrets.token_hex(4)}"
    os.environ.update(_env(admin_url, redis_url, database))
    get_settings.cache_clear()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        from tradeos_pipelines.storage.migrate import upgrade_to_head

        upgrade_to_head(os.environ["TRADEOS_DATABASE_URL"])
        results: dict[str, Any] = {"items": args.items, **bench_engine(args.items)}
        if args.rss_items:
            results["memory"] = bench_memory(args.rss_items)
    finally:
        from tradeos_pipelines.storage.database import get_engine

        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
    out = ROOT / "bench" / "results" / "odata_sync.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
