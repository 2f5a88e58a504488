"""End to end over OData: dagster-webserver and dagster-daemon as subprocesses run the syncs of
an integration created with ``protocol: "odata"`` against the OData emulator.

"Sync now" goes through the webserver's GraphQL API; the daemon's queue starts the runs. The
goods, stock and order statuses are committed exactly as 1C lists them, and a TradeOS order
becomes one customer order in 1C, also when the orders run is asked for again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from sqlalchemy import func, select

from tests.dagster.processes import dagster_processes
from tests.dagster.test_e2e import finished_run, wait_for
from tests.fixtures.emulator import ODataSide
from tradeos_pipelines.core.settings import today_in_schedule_timezone
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.storage.tables import Order, OrderItem, Product, ProductGroup, Stock

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def sync_now(instance: DagsterInstance, url: str, entity: str, *, full: bool = False):
    """One manual run through GraphQL, waited for; it must succeed."""
    launch = request_sync("odata-1c", [entity], full=full, source="manual", dagster_url=url)
    assert launch.request_id is None and len(launch.run_ids) == 1
    run = wait_for(f"the {entity} run", lambda: finished_run(instance, launch.run_ids[0]), 300)
    assert run.status == DagsterRunStatus.SUCCESS, f"{entity}: {run.status}"
    assert run.tags["tradeos/integration"] == "odata-1c"
    return run


def count(session, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(getattr(table, name) == value)
    return session.scalar(query)


def test_an_odata_integration_syncs_and_exports_through_dagster_runs(
    instance, session, make_integration, odata_emulator, tmp_path
) -> None:
    side = ODataSide(odata_emulator)
    make_integration("odata-1c", **side.integration_fields())
    env = {
        # The sensors and schedules stay out of the way: every run here is asked for.
        "TRADEOS_CHANGE_SENSOR_INTERVAL_SECONDS": "3600",
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "180",
        "DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS": "180",
    }
    with dagster_processes(tmp_path / "dagster-logs", env) as dagster:
        sync_now(instance, dagster.url, "nomenclature", full=True)
        session.expire_all()
        assert count(session, Product, integration_id="odata-1c") == side.items
        assert count(session, Product, integration_id="odata-1c", is_active=False) == side.deleted
        assert count(session, ProductGroup, integration_id="odata-1c") == side.folders
        # Every good (not a folder) that has a price of the chosen type in 1C has it here.
        slice_ = side.get("InformationRegister_ЦеныНоменклатуры25_RecordType/SliceLast()", {})
        goods = side.get("Catalog_Номенклатура", {"$select": "Ref_Key,IsFolder"})
        folders = {g["Ref_Key"] for g in goods if g["IsFolder"]}
        priced = {p["Номенклатура_Key"] for p in slice_ if p["ВидЦены_Key"] == side.price_type_key}
        assert count(session, Product, integration_id="odata-1c") - count(
            session, Product, integration_id="odata-1c", price=None
        ) == len(priced - folders)

        sync_now(instance, dagster.url, "stock", full=True)
        session.expire_all()
        assert count(session, Stock, integration_id="odata-1c") == side.stock_rows

        # A TradeOS order of today goes to 1C with the orders run, and its status comes back.
        product = session.scalars(
            select(Product)
            .where(
                Product.integration_id == "odata-1c",
                Product.is_active.is_(True),
                Product.price.is_not(None),
            )
            .order_by(Product.onec_id)
            .limit(1)
        ).one()
        order = Order(
            id=uuid.uuid4(),
            integration_id="odata-1c",
            order_date=datetime.now(UTC),
            customer_name="ООО «Ромашка»",
            customer_inn="7701234567",
        )
        session.add(order)
        session.flush()
        session.add(
            OrderItem(order_id=order.id, product_id=product.id, quantity=2, price=product.price)
        )
        session.commit()
        run = sync_now(instance, dagster.url, "orders")
        assert run.tags["dagster/partition"] == f"{today_in_schedule_timezone()}|odata-1c"
        (created,) = side.orders_for(str(order.id))
        session.expire_all()
        exported = session.get(Order, order.id)
        assert (str(exported.onec_id), exported.onec_number) == (
            created["id"],
            created["number"],
        )
        assert exported.status == "exported"

        # 1C moves the order on; the next orders run brings the status back and sends nothing
        # twice: 1C still has one document for the order.
        status = side.set_order_status(created["id"])
        sync_now(instance, dagster.url, "orders")
        session.expire_all()
        assert session.get(Order, order.id).onec_status == status
        assert side.orders_for(str(order.id)) == [created]
        lines = [
            (line["Номенклатура_Key"], Decimal(str(line["Количество"])))
            for line in side.get("Document_ЗаказКлиента_Товары", {})
            if line["Ref_Key"] == created["id"]
        ]
        assert lines == [(str(product.onec_id), Decimal(2))]
    side.close()
