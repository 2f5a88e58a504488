"""``kill -9`` of a sync process inside its final transaction: nothing half-written.

The test holds the ``sync_state`` row of the entity (``SELECT … FOR UPDATE``) from another
connection, so the child sync blocks on its watermark update — the last write of the final
transaction, after every upsert of the data has run in it. The child is then killed with
SIGKILL; PostgreSQL rolls its transaction back when the connection drops. The next sync marks
the dead one ``failed`` ("interrupted") and commits the same changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from tradeos_pipelines.engine import (
    export_orders,
    sync_nomenclature,
    sync_order_statuses,
    sync_stock,
)
from tradeos_pipelines.engine.connection import application_name
from tradeos_pipelines.engine.log import INTERRUPTED
from tradeos_pipelines.storage.database import get_engine

from .conftest import wait_for

DAY = date(2026, 11, 20)


@dataclass
class Case:
    entity: str  # as in sync_state and sync_logs
    child: str  # the sync the killed process runs
    snapshot: str  # what must not change while the sync is killed
    changed: int  # rows 1C changed, which the next sync updates
    resync: Callable[[str], object]


def _nomenclature(integration: str, onec, sql) -> Case:
    sync_nomenclature(integration)
    onec.change_items(120)
    return Case(
        "nomenclature",
        "from tradeos_pipelines.engine import sync_nomenclature; sync_nomenclature('main-1c')",
        "SELECT onec_id, price, onec_version, sync_version FROM products ORDER BY 1",
        120,
        sync_nomenclature,
    )


def _stock(integration: str, onec, sql) -> Case:
    sync_nomenclature(integration)
    sync_stock(integration)
    onec.change_stock(30)
    return Case(
        "stock",
        "from tradeos_pipelines.engine import sync_stock; sync_stock('main-1c')",
        "SELECT product_id, warehouse_id, quantity, reserved, available, sync_version "
        "FROM stock ORDER BY 1, 2",
        30,
        sync_stock,
    )


def _order_statuses(integration: str, onec, sql) -> Case:
    sync_nomenclature(integration)
    order_id = str(uuid.uuid4())
    sql(
        "INSERT INTO orders (id, integration_id, order_date, customer_name) "
        "VALUES (:id, 'main-1c', :d, 'ООО «Ромашка»')",
        id=order_id,
        d=datetime(2026, 11, 20, 10, 15, tzinfo=ZoneInfo("Europe/Moscow")),
    )
    sql(
        "INSERT INTO order_items (order_id, product_id, quantity, price) "
        "SELECT :o, id, 2, 1234.50 FROM products WHERE is_active ORDER BY code LIMIT 1",
        o=order_id,
    )
    export_orders(integration, DAY)
    sync_order_statuses(integration, DAY)
    onec_id = sql("SELECT onec_id::text FROM orders WHERE id = :id", id=order_id)[0][0]
    onec.set_order_status(onec_id)
    return Case(
        "orders",
        "import datetime; from tradeos_pipelines.engine import sync_order_statuses; "
        "sync_order_statuses('main-1c', datetime.date(2026, 11, 20))",
        "SELECT id, status, onec_status, updated_at FROM orders ORDER BY 1",
        1,
        lambda i: sync_order_statuses(i, DAY),
    )


@pytest.mark.parametrize(
    "setup", [_nomenclature, _stock, _order_statuses], ids=lambda f: f.__name__[1:]
)
def test_a_sync_killed_mid_commit_writes_nothing_and_the_next_recovers(
    setup, integration, onec, sql, db, fault_report
):
    case = setup(integration, onec, sql)
    before = sql(case.snapshot)
    state = "SELECT watermark, last_sync_version FROM sync_state WHERE entity = :e"
    watermark = sql(state, e=case.entity)[0]
    history = sql("SELECT count(*) FROM product_history")[0][0]
    name = application_name(integration, case.entity)

    holder = get_engine(db).raw_connection()
    try:
        with holder.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM sync_state WHERE integration_id = %s AND entity = %s FOR UPDATE",
                (integration, case.entity),
            )
            assert cur.rowcount == 1
        child = subprocess.Popen([sys.executable, "-c", case.child], env=os.environ.copy())
        try:
            # Blocked on the watermark row: every write of its final transaction before it ran.
            wait_for(
                lambda: (
                    sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                        "AND wait_event_type = 'Lock' AND state = 'active'",
                        a=name,
                    )[0][0]
                    == 1
                ),
                what=f"the {case.entity} sync to block inside its final transaction",
            )
            child.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
        finally:
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
    finally:
        holder.rollback()
        holder.close()
    # The dead client's backend runs on to the next read of the socket, then rolls back.
    wait_for(
        lambda: (
            sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a", a=name)[0][0]
            == 0
        ),
        what="the killed sync's backend to end",
    )

    after_kill = sql(case.snapshot)
    assert after_kill == before
    assert sql(state, e=case.entity)[0] == watermark
    assert sql("SELECT count(*) FROM product_history")[0][0] == history
    [killed] = sql("SELECT id FROM sync_logs WHERE status = 'running'")

    result = case.resync(integration)
    fault_report.record(
        f"kill -9 mid-commit ({case.entity}, {onec.protocol})",
        rows_lost=case.changed - result.updated,
        rows_half_written=len(set(after_kill) ^ set(before)),
        recovered_in_s=time.monotonic() - killed_at,
        recovery="kill → the next sync committed",
    )

    assert (result.status, result.updated) == ("success", case.changed)
    stale = sql("SELECT status, error FROM sync_logs WHERE id = :id", id=killed.id)[0]
    assert tuple(stale) == ("failed", INTERRUPTED)
    assert sql("SELECT count(*) FROM sync_logs WHERE status = 'running'")[0][0] == 0
