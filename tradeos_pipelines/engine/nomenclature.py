"""Nomenclature (1C catalogue items) → ``products`` and folders → ``product_groups``.

Rules (issue 4): upserts keyed by (integration, 1C id); a row whose 1C ``version`` did not
change is not rewritten; a deletion mark deactivates, nothing is deleted; the same row twice in
one pass → the later one wins; a field changed both in TradeOS and in 1C is settled by the
integration's ``conflict_policy`` against ``products.onec_values`` (what 1C last sent: the
common base of the three-way check); every change of an existing product keeps the previous
values in ``product_history`` under the sync's version (a created product is stamped with
``created_sync_version`` instead of a history row).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from tradeos_pipelines.engine.announce import publish_ids
from tradeos_pipelines.engine.connection import copy_json_rows
from tradeos_pipelines.engine.fields import PRODUCT_FIELDS, fields_json
from tradeos_pipelines.engine.pipeline import Staging, read_and_commit
from tradeos_pipelines.engine.runner import (
    Cursor,
    SyncAborted,
    SyncRun,
    save_state,
)
from tradeos_pipelines.engine.source import OneCSource
from tradeos_pipelines.engine.watermark import read_watermark, read_window_start
from tradeos_pipelines.sources.common.rows import NomenclatureItem, Page
from tradeos_pipelines.storage.catalogue import StoredCatalogueReader

ENTITY = "nomenclature"

_RAW = "stg_nomenclature_raw"

# Typed, deduplicated staging (the last copy of a row in the pass wins) with the engine-level
# checks: what 1C sent that the columns of products cannot hold is a reject, not a crash.
_TYPED_SQL = """
CREATE TEMP TABLE stg_nomenclature AS
SELECT s.*,
    CASE
        WHEN NOT s.is_folder AND coalesce(s.name, '') = '' THEN 'name: missing'
        WHEN length(s.code) > 64 THEN 'code: longer than 64 characters'
        WHEN length(s.article) > 128 THEN 'article: longer than 128 characters'
        WHEN length(s.unit) > 32 THEN 'unit: longer than 32 characters'
        WHEN length(s.vat) > 16 THEN 'vat: longer than 16 characters'
        WHEN length(s.version) > 64 THEN 'version: longer than 64 characters'
        WHEN abs(s.price_raw) >= 1e16 THEN 'price: ' || s.price_raw || ' is out of range'
    END AS reject_reason
FROM (
    SELECT DISTINCT ON (onec_id) * FROM (
        SELECT (r->>0)::bigint AS seq, (r->>1)::uuid AS onec_id, r->>2 AS code,
            r->>3 AS article, r->>4 AS name, r->>5 AS full_name, r->>6 AS unit,
            (r->>7)::uuid AS group_onec_id, (r->>8)::boolean AS is_folder,
            ARRAY(SELECT jsonb_array_elements_text(r->9)) AS barcodes,
            (r->>10)::numeric AS price_raw, r->>11 AS vat, (r->>12)::boolean AS deleted,
            r->>13 AS version, (r->>14)::timestamptz AS modified_at
        FROM stg_nomenclature_raw
    ) raw
    ORDER BY onec_id, seq DESC
) s
"""

_REJECT_PAYLOAD = """jsonb_build_object('id', onec_id, 'code', code, 'article', article,
    'name', name, 'full_name', full_name, 'unit', unit, 'group_id', group_onec_id,
    'is_folder', is_folder, 'barcodes', barcodes, 'price', price_raw, 'vat', vat,
    'deleted', deleted, 'version', version, 'modified_at', modified_at)"""

_ACCEPTED = (
    "(SELECT *, price_raw::numeric(18, 2) AS price FROM stg_nomenclature "
    "WHERE reject_reason IS NULL)"
)

# The plan covers the products that exist already; new ones are inserted straight from the
# staging (_INSERT_SQL), so a first sync of a big catalogue does not copy it into a plan table
# first.
_PLAN_PRODUCTS_SQL = f"""
CREATE TEMP TABLE plan_products ON COMMIT DROP AS
SELECT s.*, {fields_json("s")} AS remote,
    p.id AS product_id, p.is_active AS old_active, p.local_modified_at, p.onec_values AS base,
    {fields_json("p")} AS local,
    CASE
        WHEN s.version IS NOT NULL AND p.onec_version = s.version THEN 'unchanged'
        WHEN s.version IS NULL AND p.onec_values = {fields_json("s")}
            AND p.is_active = NOT s.deleted THEN 'unchanged'
        WHEN p.is_active AND s.deleted THEN 'deactivated'
        WHEN NOT p.is_active AND NOT s.deleted THEN 'reactivated'
        ELSE 'updated'
    END AS action
FROM {_ACCEPTED} s
JOIN products p ON p.integration_id = %(integration)s AND p.onec_id = s.onec_id
WHERE NOT s.is_folder
"""

_REWRITE = "('updated', 'deactivated', 'reactivated')"

# Only products TradeOS edited since the last sync (local_modified_at set by the trigger of
# migration 0002) are compared field by field with the base: the common case costs nothing.
_DECISIONS_SQL = f"""
CREATE TEMP TABLE field_decisions ON COMMIT DROP AS
SELECT pl.product_id, pl.onec_id, f.field, pl.local -> f.field AS local_v,
    pl.remote -> f.field AS remote_v,
    CASE
        WHEN pl.remote -> f.field = pl.base -> f.field THEN 'keep'
        WHEN pl.remote -> f.field = pl.local -> f.field THEN 'same'
        ELSE 'conflict'
    END AS kind
FROM plan_products pl CROSS JOIN unnest(%(fields)s::text[]) AS f(field)
WHERE pl.action IN {_REWRITE} AND pl.local_modified_at IS NOT NULL AND pl.base IS NOT NULL
    AND (pl.local -> f.field) IS DISTINCT FROM (pl.base -> f.field)
"""

# Fields whose TradeOS value stays: 1C did not change them, or the policy keeps TradeOS's value
# (tradeos_wins, and manual until a person resolves the conflict).
_KEPT_SQL = """
CREATE TEMP TABLE kept_fields ON COMMIT DROP AS
SELECT product_id, array_agg(field) AS fields, jsonb_object_agg(field, local_v) AS "values"
FROM field_decisions
WHERE kind = 'keep' OR (kind = 'conflict' AND %(policy)s <> 'onec_wins')
GROUP BY product_id
"""

_CONFLICTS_SQL = """
INSERT INTO sync_conflicts AS c (integration_id, entity, onec_id, field, tradeos_value,
    onec_value, status, resolution, sync_log_id, resolved_at)
SELECT %(integration)s, 'nomenclature', onec_id, field, local_v, remote_v,
    CASE WHEN %(policy)s = 'manual' THEN 'open' ELSE 'auto' END,
    CASE %(policy)s WHEN 'onec_wins' THEN 'onec' WHEN 'tradeos_wins' THEN 'tradeos' END,
    %(log_id)s, CASE WHEN %(policy)s = 'manual' THEN NULL ELSE now() END
FROM field_decisions WHERE kind = 'conflict'
ON CONFLICT (integration_id, entity, onec_id, field) WHERE status = 'open'
DO UPDATE SET tradeos_value = EXCLUDED.tradeos_value, onec_value = EXCLUDED.onec_value,
    sync_log_id = EXCLUDED.sync_log_id
"""

_HISTORY_UPDATED_SQL = f"""
INSERT INTO product_history (product_id, integration_id, sync_version, change, previous, current)
SELECT product_id, %(integration)s, %(sync_version)s,
    action, previous, current
FROM (
    SELECT pl.product_id, pl.action,
        pl.local || jsonb_build_object('is_active', pl.old_active) AS previous,
        pl.remote || coalesce(k."values", '{{}}'::jsonb)
            || jsonb_build_object('is_active', NOT pl.deleted) AS current
    FROM plan_products pl LEFT JOIN kept_fields k USING (product_id)
    WHERE pl.action IN {_REWRITE}
) h
WHERE previous IS DISTINCT FROM current
"""

_FIELD_UPDATES = ",\n    ".join(
    f"{f} = CASE WHEN '{f}' = ANY(k.fields) THEN p.{f} ELSE pl.{f} END" for f in PRODUCT_FIELDS
)

# The local_modified_at condition makes a TradeOS edit that lands between the plan and this
# statement visible (the row is skipped, the count differs, the sync rolls back and retries).
_UPDATE_SQL = f"""
UPDATE products p SET
    {_FIELD_UPDATES},
    is_active = NOT pl.deleted, onec_version = pl.version, onec_modified_at = pl.modified_at,
    onec_values = pl.remote, sync_version = %(sync_version)s, synced_at = now(),
    local_modified_at = CASE WHEN k.fields IS NULL THEN NULL ELSE p.local_modified_at END
FROM plan_products pl LEFT JOIN kept_fields k USING (product_id)
WHERE p.id = pl.product_id AND pl.action IN {_REWRITE}
    AND p.local_modified_at IS NOT DISTINCT FROM pl.local_modified_at
"""

_COLUMNS = ", ".join(PRODUCT_FIELDS)

# A created product gets no history row: its values are the row itself (``onec_values``), and
# ``created_sync_version`` tells a restore from when it exists (see history.py).
# Products 1C has and TradeOS does not: inserted, and listed for the after-commit events.
_INSERT_SQL = f"""
WITH created AS (
    INSERT INTO products (integration_id, onec_id, {_COLUMNS}, is_active, onec_version,
        onec_modified_at, onec_values, sync_version, created_sync_version, synced_at)
    SELECT %(integration)s, onec_id, {_COLUMNS}, NOT deleted, version, modified_at,
        {fields_json("s")}, %(sync_version)s, %(sync_version)s, now()
    FROM {_ACCEPTED} s
    WHERE NOT s.is_folder AND NOT EXISTS (
        SELECT FROM products p
        WHERE p.integration_id = %(integration)s AND p.onec_id = s.onec_id
    )
    RETURNING onec_id
)
INSERT INTO changed_products SELECT onec_id FROM created
"""

_PLAN_GROUPS_SQL = f"""
CREATE TEMP TABLE plan_groups ON COMMIT DROP AS
SELECT s.onec_id, s.group_onec_id, coalesce(s.name, s.code, '') AS name, s.deleted, s.version,
    s.modified_at, g.id AS group_id,
    CASE
        WHEN g.id IS NULL THEN 'created'
        WHEN s.version IS NOT NULL AND g.onec_version = s.version THEN 'unchanged'
        WHEN g.is_active AND s.deleted THEN 'deactivated'
        ELSE 'updated'
    END AS action
FROM {_ACCEPTED} s
LEFT JOIN product_groups g ON g.integration_id = %(integration)s AND g.onec_id = s.onec_id
WHERE s.is_folder
"""

_GROUPS_SQL = """
INSERT INTO product_groups (integration_id, onec_id, parent_onec_id, name, is_active,
    onec_version, onec_modified_at, sync_version, synced_at)
SELECT %(integration)s, onec_id, group_onec_id, name, NOT deleted, version, modified_at,
    %(sync_version)s, now()
FROM plan_groups WHERE action <> 'unchanged'
ON CONFLICT (integration_id, onec_id) DO UPDATE SET parent_onec_id = EXCLUDED.parent_onec_id,
    name = EXCLUDED.name, is_active = EXCLUDED.is_active, onec_version = EXCLUDED.onec_version,
    onec_modified_at = EXCLUDED.onec_modified_at, sync_version = EXCLUDED.sync_version,
    synced_at = EXCLUDED.synced_at
"""

_COUNTS_SQL = """
SELECT action, count(*) FROM (
    SELECT action FROM plan_products UNION ALL SELECT action FROM plan_groups
) a GROUP BY action
"""


def _stage(sync: SyncRun, page: Page[NomenclatureItem], seq: Iterator[int]) -> None:
    copy_json_rows(
        sync.conn,
        _RAW,
        (
            (
                n,
                i.id,
                i.code,
                i.article,
                i.name,
                i.full_name,
                i.unit,
                i.group_id,
                i.is_folder,
                i.barcodes,
                i.price,
                i.vat,
                i.deleted,
                i.version,
                i.modified_at,
            )
            for n, i in zip(seq, page.items, strict=False)
        ),
    )


_STAGING = Staging(
    raw_table=_RAW,
    typed_sql=_TYPED_SQL,
    typed_table="stg_nomenclature",
    reject_id="onec_id::text",
    reject_payload=_REJECT_PAYLOAD,
)


def _read(
    sync: SyncRun, client: OneCSource, since: datetime | None, size: int
) -> AsyncIterator[Page[NomenclatureItem]]:
    """The pass to read. A source without modification times (OData) is given what TradeOS
    holds instead, asks it for the stored versions of each page of keys it reads, and reads
    full rows only for what differs from them."""
    if client.change_tracking == "version":
        sync.change_mark = datetime.now(UTC)
        if not sync.full:
            catalogue = StoredCatalogueReader(sync.database_url, sync.integration_id)
            return client.iter_nomenclature(  # type: ignore[call-arg]
                changed_since=since, page_size=size, catalogue=catalogue
            )
    return client.iter_nomenclature(changed_since=since, page_size=size)


async def sync_body(sync: SyncRun) -> None:
    """Read the nomenclature from 1C, then write it in one transaction."""
    conn = sync.conn
    watermark = None if sync.full else read_watermark(conn, sync.integration_id, ENTITY)
    if watermark is None:
        sync.full = True  # the first sync of an integration is a full one
    await read_and_commit(
        sync,
        _STAGING,
        read=lambda client, since, size: _read(sync, client, since, size),
        since=read_window_start(watermark, sync.settings.overlap_seconds),
        stage=_stage,
        apply=_apply,
        announce=_announce,
    )


def _apply(cur: Cursor, sync: SyncRun) -> None:
    params: dict[str, Any] = {
        "integration": sync.integration_id,
        "sync_version": sync.sync_version,
        "policy": sync.integration.conflict_policy,
        "log_id": sync.log_id,
        "fields": list(PRODUCT_FIELDS),
    }
    cur.execute(_PLAN_PRODUCTS_SQL, params)
    cur.execute(_DECISIONS_SQL, params)
    cur.execute(_KEPT_SQL, params)
    cur.execute(_CONFLICTS_SQL, params)
    sync.counts.conflicts = cur.rowcount
    cur.execute(_HISTORY_UPDATED_SQL, params)
    cur.execute(_UPDATE_SQL, params)
    updated = cur.rowcount
    cur.execute(f"SELECT count(*) FROM plan_products WHERE action IN {_REWRITE}")
    if cur.fetchone()[0] != updated:
        raise SyncAborted(
            "products were edited in TradeOS while the sync was writing them; nothing was "
            "written, run the sync again"
        )
    # Kept for the after-commit events; the other temp tables are dropped with the commit.
    cur.execute(
        "CREATE TEMP TABLE changed_products AS SELECT onec_id FROM plan_products "
        "WHERE action <> 'unchanged'"
    )
    cur.execute(_INSERT_SQL, params)
    created_products = cur.rowcount
    cur.execute(_PLAN_GROUPS_SQL, params)
    cur.execute(_GROUPS_SQL, params)
    cur.execute(_COUNTS_SQL)
    by_action = dict(cur.fetchall())
    counts = sync.counts
    counts.created = created_products + by_action.get("created", 0)
    counts.unchanged = by_action.get("unchanged", 0)
    counts.deleted = by_action.get("deactivated", 0)
    counts.updated = by_action.get("updated", 0) + by_action.get("reactivated", 0)
    # Rejected rows move the watermark too: a bad row is in sync_rejects, and re-reading it
    # on every incremental would keep the integration "changed" forever.
    cur.execute("SELECT max(modified_at) FROM stg_nomenclature")
    save_state(cur, sync, cur.fetchone()[0])


def _announce(sync: SyncRun) -> None:
    with sync.conn.cursor(name="changed_products", withhold=True) as cur:
        cur.itersize = 500
        cur.execute("SELECT onec_id::text FROM changed_products")
        publish_ids(
            sync.publisher,
            "product_updates",
            "product.updated",
            {"integration_id": sync.integration_id, "sync_version": sync.sync_version},
            (row[0] for row in cur),
            key="onec_ids",
        )
