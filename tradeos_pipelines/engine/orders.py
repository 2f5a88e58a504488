"""Orders both ways: TradeOS orders → 1C (export), and 1C's order statuses → TradeOS.

Export (entity ``order_export``): orders with status ``new`` (of one day in the integration's
time zone, or all) are sent with their UUID as ``external_id``, 1C's idempotency key, so a retry
after a lost answer never creates a second order (409 duplicate = success). Each accepted order
is recorded in its own transaction the moment 1C answers: an order 1C has is a fact TradeOS must
not forget because a later one failed. A 422 marks that order ``export_failed`` with 1C's message
and the others go on (the log says ``partial``); 1C unavailable stops the export (unsent orders
stay ``new``, the log says ``failed``).

Statuses (entity ``orders``): 1C orders modified since the watermark (minus the overlap) are
read and every TradeOS order they match (by ``external_id`` or 1C id) gets 1C's number and
status. An order is modified in 1C after its date, so a run for day D reads from the start of D
(or from the watermark, whichever is earlier): everything 1C did to D's orders is covered, and
changes to other days' orders seen on the way are applied too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from tradeos_pipelines.engine.announce import publish_ids
from tradeos_pipelines.engine.connection import Connection, copy_json_rows
from tradeos_pipelines.engine.pipeline import Staging, read_and_commit
from tradeos_pipelines.engine.runner import (
    Cursor,
    SyncRun,
    commit,
    save_state,
    write_rejects,
)
from tradeos_pipelines.engine.source import OneCSource, invalidate_cache, onec_client
from tradeos_pipelines.engine.watermark import read_watermark
from tradeos_pipelines.sources.common.errors import OneCValidationError
from tradeos_pipelines.sources.common.rows import (
    OneCOrder,
    OrderCreate,
    OrderCreated,
    OrderCustomer,
    OrderLine,
    Page,
)

EXPORT_ENTITY = "order_export"
STATUS_ENTITY = "orders"

# Orders loaded from PostgreSQL and sent per round; bounds memory whatever the backlog.
EXPORT_CHUNK = 100


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the integration's time zone, as aware datetimes."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


# ----- export ----------------------------------------------------------------------------

_WAITING_SQL = """
SELECT id::text FROM orders
WHERE integration_id = %(integration)s AND status = 'new'
    AND (%(start)s::timestamptz IS NULL OR order_date >= %(start)s)
    AND (%(end)s::timestamptz IS NULL OR order_date < %(end)s)
ORDER BY order_date, id
"""

_LOAD_SQL = """
SELECT o.id, o.order_date, o.customer_name, o.customer_inn, o.customer_phone,
    o.customer_email, o.warehouse_onec_id, o.comment,
    coalesce(json_agg(json_build_object('product_id', p.onec_id,
        'quantity', i.quantity::text, 'price', i.price::text) ORDER BY i.id)
        FILTER (WHERE i.id IS NOT NULL), '[]')
FROM orders o
LEFT JOIN order_items i ON i.order_id = o.id
LEFT JOIN products p ON p.id = i.product_id
WHERE o.id = ANY(%(ids)s::uuid[]) AND o.status = 'new'
GROUP BY o.id
ORDER BY o.order_date, o.id
"""

# The status guard keeps an order a person changed meanwhile (or the status sync already
# recorded) from being overwritten. 1C took the order, so the rejects of its earlier refused
# exports are resolved by this export, in the same statement (export records each order as
# 1C answers, not in one final transaction).
_EXPORTED_SQL = """
WITH exported AS (
    UPDATE orders SET status = 'exported', onec_id = %(onec_id)s, onec_number = %(number)s,
        onec_status = %(status)s, exported_at = now(), export_error = NULL,
        export_attempts = export_attempts + 1, updated_at = now()
    WHERE id = %(id)s AND status = 'new'
)
UPDATE sync_rejects r SET resolved_at = now(), resolved_by_sync_log_id = %(log)s
FROM sync_logs l
WHERE r.sync_log_id = l.id AND l.integration_id = %(integration)s AND l.entity = %(entity)s
    AND r.onec_id = %(id)s AND r.resolved_at IS NULL AND r.sync_log_id <> %(log)s
"""

# A protocol without an idempotency key (OData) may have created the 1C document before 1C
# refused to post it: its id and number are kept, so the order can be found in 1C.
_REFUSED_SQL = """
UPDATE orders SET status = 'export_failed', export_error = %(error)s,
    onec_id = coalesce(%(onec_id)s::uuid, onec_id),
    onec_number = coalesce(%(number)s, onec_number),
    export_attempts = export_attempts + 1, updated_at = now()
WHERE id = %(id)s AND status = 'new'
"""


def _order_create(row: tuple[Any, ...]) -> OrderCreate:
    order_id, order_date, name, inn, phone, email, warehouse, comment, items = row
    return OrderCreate(
        external_id=order_id,
        date=order_date,
        customer=OrderCustomer(name=name, inn=inn, phone=phone, email=email),
        warehouse_id=warehouse,
        comment=comment,
        items=[
            OrderLine(
                product_id=item["product_id"],
                quantity=Decimal(item["quantity"]),
                price=Decimal(item["price"]),
            )
            for item in items
        ],
    )


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)


def _refuse(
    sync: SyncRun,
    order_id: str,
    message: str,
    payload: Any,
    onec_id: str | None = None,
    number: str | None = None,
) -> None:
    _execute(
        sync.conn,
        _REFUSED_SQL,
        {"id": order_id, "error": message, "onec_id": onec_id, "number": number},
    )
    write_rejects(sync.conn, sync.log_id, [(order_id, message, payload)])
    sync.counts.rejected += 1


def _record(sync: SyncRun, order_id: str, created: OrderCreated) -> None:
    _execute(
        sync.conn,
        _EXPORTED_SQL,
        {
            "id": order_id,
            "onec_id": str(created.id),
            "number": created.number,
            "status": created.status,
            "log": sync.log_id,
            "integration": sync.integration_id,
            "entity": sync.entity,
        },
    )
    if created.duplicate:
        sync.counts.updated += 1  # an earlier attempt created it; now TradeOS knows
    else:
        sync.counts.created += 1


async def export_body(sync: SyncRun, day: date | None) -> None:
    """Send the waiting orders to 1C, recording each answer as it comes."""
    start, end = day_bounds(day, sync.integration.timezone) if day else (None, None)
    with sync.conn.cursor() as cur:
        cur.execute(_WAITING_SQL, {"integration": sync.integration_id, "start": start, "end": end})
        waiting = [row[0] for row in cur.fetchall()]
    sync.onec_total = len(waiting)
    async with onec_client(sync) as client:
        for offset in range(0, len(waiting), EXPORT_CHUNK):
            with sync.conn.cursor() as cur:
                cur.execute(_LOAD_SQL, {"ids": waiting[offset : offset + EXPORT_CHUNK]})
                rows = cur.fetchall()
            done: list[str] = []
            try:
                for row in rows:
                    order_id = str(row[0])
                    sync.counts.fetched += 1
                    try:
                        body = _order_create(row)
                    except ValidationError as exc:
                        reason = "; ".join(
                            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                        )
                        _refuse(sync, order_id, f"order cannot be sent: {reason}", None)
                        done.append(order_id)
                        continue
                    try:
                        created = await client.create_order(body)
                    except OneCValidationError as exc:
                        _refuse(
                            sync,
                            order_id,
                            exc.message,
                            body.model_dump(mode="json"),
                            # Set when 1C created the document but refused to post it.
                            onec_id=getattr(exc, "onec_id", None),
                            number=getattr(exc, "number", None),
                        )
                        done.append(order_id)
                        continue
                    _record(sync, order_id, created)
                    done.append(order_id)
            finally:
                # What committed is announced even when 1C stops the export midway.
                _announce_orders(sync, done)
            sync.publish_progress()
    commit(sync, lambda cur: None)
    await invalidate_cache(sync)


def _announce_orders(sync: SyncRun, order_ids: list[str]) -> None:
    publish_ids(
        sync.publisher,
        "order_updates",
        "order.updated",
        {"integration_id": sync.integration_id},
        order_ids,
        key="order_ids",
    )


# ----- statuses --------------------------------------------------------------------------

_RAW = "stg_orders_raw"

_TYPED_SQL = """
CREATE TEMP TABLE stg_orders AS
SELECT s.*,
    CASE
        WHEN length(s.number) > 64 THEN 'number: longer than 64 characters'
        WHEN length(s.status) > 128 THEN 'status: longer than 128 characters'
    END AS reject_reason
FROM (
    SELECT DISTINCT ON (onec_id) * FROM (
        SELECT (r->>0)::bigint AS seq, (r->>1)::uuid AS onec_id, r->>2 AS number,
            (r->>3)::uuid AS external_id, r->>4 AS status, (r->>5)::timestamptz AS modified_at
        FROM stg_orders_raw
    ) raw
    ORDER BY onec_id, seq DESC
) s
"""

_REJECT_PAYLOAD = """jsonb_build_object('id', onec_id, 'number', number,
    'external_id', external_id, 'status', status, 'modified_at', modified_at)"""

_PLAN_SQL = """
CREATE TEMP TABLE plan_orders ON COMMIT DROP AS
SELECT DISTINCT ON (o.id) o.id AS order_id, s.onec_id, s.number, s.status, s.modified_at,
    CASE WHEN o.status IN ('new', 'export_failed') THEN 'exported' ELSE o.status END
        AS new_status
FROM stg_orders s
JOIN orders o ON o.integration_id = %(integration)s
    AND (o.id = s.external_id OR o.onec_id = s.onec_id)
WHERE s.reject_reason IS NULL
ORDER BY o.id, s.seq DESC
"""

# An order found in 1C by its external_id was created there even if TradeOS never heard the
# answer (or heard a refusal before a person fixed it in 1C): it is exported.
_UPDATE_SQL = """
WITH changed AS (
    UPDATE orders o SET onec_id = pl.onec_id, onec_number = pl.number, onec_status = pl.status,
        onec_modified_at = pl.modified_at, status = pl.new_status,
        exported_at = coalesce(o.exported_at, now()),
        export_error = CASE WHEN pl.new_status = o.status THEN o.export_error END,
        updated_at = now()
    FROM plan_orders pl
    WHERE o.id = pl.order_id
        AND (o.onec_id, o.onec_number, o.onec_status, o.status)
            IS DISTINCT FROM (pl.onec_id, pl.number, pl.status, pl.new_status)
    RETURNING o.id
)
INSERT INTO changed_orders SELECT id FROM changed
"""


def _stage_orders(sync: SyncRun, page: Page[OneCOrder], seq: Iterator[int]) -> None:
    copy_json_rows(
        sync.conn,
        _RAW,
        (
            (n, r.id, r.number, r.external_id, r.status, r.modified_at)
            for n, r in zip(seq, page.items, strict=False)
        ),
    )


_STATUS_STAGING = Staging(
    raw_table=_RAW,
    typed_sql=_TYPED_SQL,
    typed_table="stg_orders",
    reject_id="onec_id::text",
    reject_payload=_REJECT_PAYLOAD,
    extra_tables=("CREATE TEMP TABLE changed_orders (id uuid)",),
)


async def status_body(sync: SyncRun, day: date | None) -> None:
    """Read 1C's orders changed in the window, then update the TradeOS orders they match."""
    conn = sync.conn
    watermark = None if sync.full else read_watermark(conn, sync.integration_id, STATUS_ENTITY)
    if watermark is None:
        sync.full = True
        since = None
    else:
        since = watermark
        if day is not None:
            since = min(since, day_bounds(day, sync.integration.timezone)[0])
        since -= timedelta(seconds=sync.settings.overlap_seconds)
    await read_and_commit(
        sync,
        _STATUS_STAGING,
        read=lambda client, since, size: _read_orders(sync, client, since, size),
        since=since,
        stage=_stage_orders,
        apply=_apply_statuses,
        announce=_announce_statuses,
    )


def _read_orders(
    sync: SyncRun, client: OneCSource, since: datetime | None, size: int
) -> AsyncIterator[Page[OneCOrder]]:
    if client.change_tracking == "version":
        # No modification times (OData): the read's start is the next watermark.
        sync.change_mark = datetime.now(UTC)
    return client.iter_orders(changed_since=since, page_size=size)


def _apply_statuses(cur: Cursor, sync: SyncRun) -> None:
    params = {"integration": sync.integration_id}
    cur.execute(_PLAN_SQL, params)
    cur.execute(_UPDATE_SQL, params)
    sync.counts.updated = cur.rowcount
    # Every other row 1C sent changed nothing in TradeOS: a status TradeOS already had, an
    # order entered in 1C directly (no TradeOS order to update), or an older copy of a row
    # read twice. The status sync never creates orders, so the counters add up to the rows
    # read: fetched = updated + unchanged + rejected.
    sync.counts.unchanged = sync.counts.fetched - sync.counts.rejected - sync.counts.updated
    # Rejected rows move the watermark too: a bad row is in sync_rejects, and re-reading it
    # on every incremental would keep the integration "changed" forever.
    cur.execute("SELECT max(modified_at) FROM stg_orders")
    save_state(cur, sync, cur.fetchone()[0])


def _announce_statuses(sync: SyncRun) -> None:
    with sync.conn.cursor() as cur:
        cur.execute("SELECT id::text FROM changed_orders")
        ids = [row[0] for row in cur.fetchall()]
    _announce_orders(sync, ids)
