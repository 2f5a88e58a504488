"""Stock (free balances per product × warehouse) → ``warehouses`` and ``stock``.

A full pass is a snapshot: a pair TradeOS has and 1C did not send becomes zero (counted as
``deleted``). An incremental pass changes only the pairs 1C sent. A row for a product TradeOS
does not know is a reject (sync nomenclature first; the Dagster graph orders them).
"""

from __future__ import annotations

from collections.abc import Iterator

from tradeos_pipelines.engine.announce import publish_ids
from tradeos_pipelines.engine.connection import copy_json_rows
from tradeos_pipelines.engine.pipeline import Staging, read_and_commit
from tradeos_pipelines.engine.runner import (
    Cursor,
    SyncRun,
    save_state,
)
from tradeos_pipelines.engine.watermark import read_watermark, read_window_start
from tradeos_pipelines.sources.common.rows import Page, StockRow

ENTITY = "stock"

_RAW = "stg_stock_raw"

_TYPED_SQL = """
CREATE TEMP TABLE stg_stock AS
SELECT s.*,
    CASE
        WHEN NOT EXISTS (SELECT 1 FROM products p
                         WHERE p.integration_id = %(integration)s
                           AND p.onec_id = s.product_onec_id)
            THEN 'product_id: unknown product ' || s.product_onec_id
        WHEN greatest(abs(s.quantity), abs(s.reserved), abs(s.available)) >= 1e15
            THEN 'quantity: out of range'
    END AS reject_reason
FROM (
    SELECT DISTINCT ON (product_onec_id, warehouse_onec_id) * FROM (
        SELECT (r->>0)::bigint AS seq, (r->>1)::uuid AS product_onec_id,
            (r->>2)::uuid AS warehouse_onec_id, r->>3 AS warehouse_name,
            (r->>4)::numeric AS quantity, (r->>5)::numeric AS reserved,
            (r->>6)::numeric AS available, (r->>7)::timestamptz AS modified_at
        FROM stg_stock_raw
    ) raw
    ORDER BY product_onec_id, warehouse_onec_id, seq DESC
) s
"""

_REJECT_PAYLOAD = """jsonb_build_object('product_id', product_onec_id,
    'warehouse_id', warehouse_onec_id, 'warehouse_name', warehouse_name,
    'quantity', quantity, 'reserved', reserved, 'available', available,
    'modified_at', modified_at)"""

# A warehouse is named by the latest row that carried a name; one that never came with a name
# is named by its id until 1C sends one.
_WAREHOUSES_SQL = """
INSERT INTO warehouses AS w (integration_id, onec_id, name)
SELECT %(integration)s, warehouse_onec_id, coalesce(warehouse_name, warehouse_onec_id::text)
FROM (
    SELECT DISTINCT ON (warehouse_onec_id) warehouse_onec_id, warehouse_name
    FROM stg_stock WHERE reject_reason IS NULL
    ORDER BY warehouse_onec_id, (warehouse_name IS NULL), seq DESC
) named
ON CONFLICT (integration_id, onec_id) DO UPDATE SET name = EXCLUDED.name
WHERE EXCLUDED.name <> w.name AND EXCLUDED.name <> EXCLUDED.onec_id::text
"""

_PLAN_SQL = """
CREATE TEMP TABLE plan_stock ON COMMIT DROP AS
SELECT p.id AS product_id, p.onec_id AS product_onec_id, w.id AS warehouse_id,
    s.quantity::numeric(18, 3) AS quantity, s.reserved::numeric(18, 3) AS reserved,
    s.available::numeric(18, 3) AS available, s.modified_at,
    CASE
        WHEN st.product_id IS NULL THEN 'created'
        WHEN (st.quantity, st.reserved, st.available)
            = (s.quantity::numeric(18, 3), s.reserved::numeric(18, 3),
               s.available::numeric(18, 3)) THEN 'unchanged'
        ELSE 'updated'
    END AS action
FROM stg_stock s
JOIN products p ON p.integration_id = %(integration)s AND p.onec_id = s.product_onec_id
JOIN warehouses w ON w.integration_id = %(integration)s AND w.onec_id = s.warehouse_onec_id
LEFT JOIN stock st ON st.product_id = p.id AND st.warehouse_id = w.id
WHERE s.reject_reason IS NULL
"""

_INSERT_SQL = """
INSERT INTO stock (integration_id, product_id, warehouse_id, quantity, reserved, available,
    onec_modified_at, sync_version, synced_at)
SELECT %(integration)s, product_id, warehouse_id, quantity, reserved, available, modified_at,
    %(sync_version)s, now()
FROM plan_stock WHERE action = 'created'
"""

_UPDATE_SQL = """
UPDATE stock st SET quantity = pl.quantity, reserved = pl.reserved, available = pl.available,
    onec_modified_at = pl.modified_at, sync_version = %(sync_version)s, synced_at = now()
FROM plan_stock pl
WHERE st.product_id = pl.product_id AND st.warehouse_id = pl.warehouse_id
    AND pl.action = 'updated'
"""

# The snapshot rule. Pairs 1C sent but the engine rejected are left alone: a bad row is not
# evidence that the stock is gone.
_ZERO_ABSENT_SQL = """
WITH zeroed AS (
    UPDATE stock st SET quantity = 0, reserved = 0, available = 0,
        sync_version = %(sync_version)s, synced_at = now()
    FROM products p, warehouses w
    WHERE st.integration_id = %(integration)s AND p.id = st.product_id
        AND w.id = st.warehouse_id
        AND (st.quantity, st.reserved, st.available) <> (0, 0, 0)
        AND NOT EXISTS (SELECT 1 FROM stg_stock s WHERE s.product_onec_id = p.onec_id
                        AND s.warehouse_onec_id = w.onec_id)
    RETURNING p.onec_id
)
INSERT INTO changed_stock SELECT onec_id FROM zeroed
"""


def _stage(sync: SyncRun, page: Page[StockRow], seq: Iterator[int]) -> None:
    copy_json_rows(
        sync.conn,
        _RAW,
        (
            (
                n,
                r.product_id,
                r.warehouse_id,
                r.warehouse_name,
                r.quantity,
                r.reserved,
                r.available,
                r.modified_at,
            )
            for n, r in zip(seq, page.items, strict=False)
        ),
    )


_STAGING = Staging(
    raw_table=_RAW,
    typed_sql=_TYPED_SQL,
    typed_table="stg_stock",
    reject_id="product_onec_id::text",
    reject_payload=_REJECT_PAYLOAD,
)


async def sync_body(sync: SyncRun) -> None:
    """Read stock from 1C, then write it in one transaction."""
    conn = sync.conn
    watermark = None if sync.full else read_watermark(conn, sync.integration_id, ENTITY)
    if watermark is None:
        sync.full = True  # the first sync is a full snapshot
    await read_and_commit(
        sync,
        _STAGING,
        read=lambda client, since, size: client.iter_stock(changed_since=since, page_size=size),
        since=read_window_start(watermark, sync.settings.overlap_seconds),
        stage=_stage,
        apply=_apply,
        announce=_announce,
        typed_params={"integration": sync.integration_id},
    )


def _apply(cur: Cursor, sync: SyncRun) -> None:
    params = {"integration": sync.integration_id, "sync_version": sync.sync_version}
    cur.execute(_WAREHOUSES_SQL, params)
    cur.execute(_PLAN_SQL, params)
    cur.execute(_INSERT_SQL, params)
    cur.execute(_UPDATE_SQL, params)
    # Kept past the commit for the stock.updated events.
    cur.execute(
        "CREATE TEMP TABLE changed_stock AS SELECT product_onec_id AS onec_id "
        "FROM plan_stock WHERE action <> 'unchanged'"
    )
    if sync.full:
        cur.execute(_ZERO_ABSENT_SQL, params)
        sync.counts.deleted = cur.rowcount
    cur.execute("SELECT action, count(*) FROM plan_stock GROUP BY action")
    by_action = dict(cur.fetchall())
    sync.counts.created = by_action.get("created", 0)
    sync.counts.updated = by_action.get("updated", 0)
    sync.counts.unchanged = by_action.get("unchanged", 0)
    # Rejected rows move the watermark too: a bad row is in sync_rejects, and re-reading it
    # on every incremental would keep the integration "changed" forever.
    cur.execute("SELECT max(modified_at) FROM stg_stock")
    save_state(cur, sync, cur.fetchone()[0])


def _announce(sync: SyncRun) -> None:
    with sync.conn.cursor(name="changed_stock", withhold=True) as cur:
        cur.itersize = 500
        cur.execute("SELECT DISTINCT onec_id::text FROM changed_stock")
        publish_ids(
            sync.publisher,
            "stock_updates",
            "stock.updated",
            {"integration_id": sync.integration_id, "sync_version": sync.sync_version},
            (row[0] for row in cur),
            key="product_onec_ids",
        )
