"""Product history, and undo: put every product of an integration back to a sync version.

:func:`product_history` lists which sync changed which field of a product from what to what
(``product_history`` rows, oldest first, plus the sync that created it).

:func:`restore_integration` computes, for every product of the integration, its values after
sync ``to_version`` committed (the same rule as :func:`~tradeos_pipelines.engine.history.
restore_product_version`, set-based) and compares them with today's:

- a dry run (the default) only reports what would change;
- applied, it runs as one sync would: it takes the advisory lock of every entity of the
  integration (refused while any sync of it runs), logs a ``running`` ``sync_logs`` row
  (entity ``nomenclature``, ``run_id`` ``restore:<version>``), and in ONE transaction takes a new
  sync version, writes the old values back, keeps a ``product_history`` row ``restored`` per
  product and marks the log ``success``; then it announces ``product.updated``.

The restored values are TradeOS edits (the trigger of migration 0002 stamps
``local_modified_at``): the next sync keeps them while 1C does not change those fields again,
and settles a field 1C does change by the integration's conflict policy. Products created after
``to_version`` are left as they are (1C still has them) and counted; ``is_active`` follows 1C's
deletion mark and is not restored.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extras
from sqlalchemy import text
from sqlalchemy.orm import Session

from tradeos_pipelines.core.vocabulary import LOGGED_ENTITIES, RowCounts
from tradeos_pipelines.engine.announce import publish, publish_ids
from tradeos_pipelines.engine.connection import (
    resolve_database_url,
    sync_connection,
    try_lock,
    unlock,
)
from tradeos_pipelines.engine.fields import PRODUCT_FIELDS, assignments_from_json, fields_json
from tradeos_pipelines.engine.log import fail_log, start_log
from tradeos_pipelines.event_bus import EventPublisher, RedisEventBus
from tradeos_pipelines.storage.database import get_engine

ENTITY = "nomenclature"
# A dry run lists at most this many products; the counts cover all of them.
SHOWN_CHANGES = 200


class ProductNotFound(LookupError):
    """No product of the integration has this 1C id."""


class UnknownVersion(LookupError):
    """Not a sync version of this integration; ``valid`` lists the latest ones."""

    def __init__(self, integration_id: str, version: int, valid: list[int]) -> None:
        choices = ", ".join(str(v) for v in valid) if valid else "none (never synced)"
        super().__init__(
            f"{version} is not a sync version of integration {integration_id!r}; "
            f"latest versions: {choices}"
        )
        self.valid = valid


class RestoreRefused(RuntimeError):
    """A sync of the integration is running; the restore did not start."""


# ----- history -------------------------------------------------------------------------------

_PRODUCT_SQL = f"""
SELECT id, onec_id::text, created_sync_version, is_active, {fields_json("p")} AS "values"
FROM products p WHERE integration_id = :integration AND onec_id = :onec_id
"""

_HISTORY_SQL = """
SELECT h.sync_version, h.change, h.changed_at, h.previous, h.current, l.id AS sync_log_id,
    l.run_id
FROM product_history h
LEFT JOIN sync_logs l ON l.integration_id = h.integration_id AND l.sync_version = h.sync_version
WHERE h.product_id = :product ORDER BY h.sync_version, h.id
"""

_CREATED_SQL = """
SELECT id, run_id, finished_at FROM sync_logs
WHERE integration_id = :integration AND sync_version = :version
"""


def field_changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"field", "from", "to"}]`` for each field (and ``is_active``) that differs."""
    previous = previous or {}
    names = [*PRODUCT_FIELDS, "is_active"]
    return [
        {"field": name, "from": previous.get(name), "to": current.get(name)}
        for name in names
        if (name in previous or name in current) and previous.get(name) != current.get(name)
    ]


def product_history(session: Session, integration_id: str, onec_id: uuid.UUID) -> dict[str, Any]:
    """A product's values now and every change a sync (or a restore) made, oldest first."""
    product = (
        session.execute(text(_PRODUCT_SQL), {"integration": integration_id, "onec_id": onec_id})
        .mappings()
        .first()
    )
    if product is None:
        raise ProductNotFound(f"integration {integration_id!r} has no product with 1C id {onec_id}")
    changes: list[dict[str, Any]] = []
    if product["created_sync_version"] is not None:
        created = (
            session.execute(
                text(_CREATED_SQL),
                {"integration": integration_id, "version": product["created_sync_version"]},
            )
            .mappings()
            .first()
        )
        changes.append(
            {
                "sync_version": product["created_sync_version"],
                "change": "created",
                "changed_at": created["finished_at"] if created else None,
                "sync_log_id": created["id"] if created else None,
                "run_id": created["run_id"] if created else None,
                "changes": [],
            }
        )
    for row in session.execute(text(_HISTORY_SQL), {"product": product["id"]}).mappings():
        changes.append(
            {
                "sync_version": row["sync_version"],
                "change": row["change"],
                "changed_at": row["changed_at"],
                "sync_log_id": row["sync_log_id"],
                "run_id": row["run_id"],
                "changes": field_changes(row["previous"], row["current"]),
            }
        )
    return {
        "integration_id": integration_id,
        "onec_id": product["onec_id"],
        "is_active": product["is_active"],
        "values": product["values"],
        "created_sync_version": product["created_sync_version"],
        "data": changes,
        "count": len(changes),
    }


# ----- restore -------------------------------------------------------------------------------

# Each product's values after :version (see history.restore_product_version for the rule):
# NULL when it did not exist yet (created later) or is older than created_sync_version.
_SNAPSHOT_SQL = f"""
CREATE TEMP TABLE restore_plan ON COMMIT DROP AS
SELECT p.id AS product_id, p.onec_id, p.created_sync_version, {fields_json("p")} AS now_values,
    p.is_active,
    coalesce(
        (SELECT current FROM product_history h
         WHERE h.product_id = p.id AND h.sync_version <= %(version)s
         ORDER BY h.sync_version DESC, h.id DESC LIMIT 1),
        CASE WHEN p.created_sync_version <= %(version)s THEN coalesce(
            (SELECT previous FROM product_history h
             WHERE h.product_id = p.id AND h.sync_version > %(version)s
             ORDER BY h.sync_version, h.id LIMIT 1),
            p.onec_values)
        END
    ) AS snapshot
FROM products p WHERE p.integration_id = %(integration)s
"""


def _differs(alias: str = "") -> str:
    """SQL: the snapshot differs from today's values in some field."""
    return " OR ".join(
        f"({alias}snapshot -> '{f}') IS DISTINCT FROM ({alias}now_values -> '{f}')"
        for f in PRODUCT_FIELDS
    )


_DIFFERS = _differs()

_SUMMARY_SQL = f"""
SELECT
    count(*) FILTER (WHERE snapshot IS NOT NULL AND ({_DIFFERS})) AS changed,
    count(*) FILTER (WHERE snapshot IS NOT NULL AND NOT ({_DIFFERS})) AS unchanged,
    count(*) FILTER (WHERE snapshot IS NULL AND created_sync_version > %(version)s)
        AS created_after,
    count(*) FILTER (WHERE snapshot IS NULL AND created_sync_version IS NULL) AS unknown
FROM restore_plan
"""

_SHOWN_SQL = f"""
SELECT onec_id::text, now_values, snapshot FROM restore_plan
WHERE snapshot IS NOT NULL AND ({_DIFFERS})
ORDER BY now_values ->> 'code' NULLS LAST, onec_id LIMIT %(limit)s
"""

_APPLY_HISTORY_SQL = f"""
INSERT INTO product_history (product_id, integration_id, sync_version, change, previous, current)
SELECT product_id, %(integration)s, %(new_version)s, 'restored',
    now_values || jsonb_build_object('is_active', is_active),
    (now_values || (snapshot - 'is_active')) || jsonb_build_object('is_active', is_active)
FROM restore_plan WHERE snapshot IS NOT NULL AND ({_DIFFERS})
"""

_APPLY_SQL = f"""
UPDATE products p SET {assignments_from_json("r.snapshot")}, sync_version = %(new_version)s
FROM restore_plan r
WHERE p.id = r.product_id AND r.snapshot IS NOT NULL AND ({_differs("r.")})
RETURNING p.onec_id::text
"""

_VERSIONS_SQL = """
SELECT sync_version FROM sync_logs
WHERE integration_id = %(integration)s AND sync_version IS NOT NULL
ORDER BY sync_version DESC LIMIT 10
"""

_IS_VERSION_SQL = """
SELECT 1 FROM sync_logs WHERE integration_id = %(integration)s AND sync_version = %(version)s
"""

_FINISH_SQL = """
UPDATE sync_logs SET status = 'success', finished_at = now(), sync_version = %(new_version)s,
    updated = %(changed)s, unchanged = %(unchanged)s
WHERE id = %(log_id)s
"""


@dataclass
class RestorePlan:
    """What a restore to ``to_version`` changes (or changed, when ``applied``)."""

    integration_id: str
    to_version: int
    applied: bool
    changed: int = 0
    unchanged: int = 0
    created_after: int = 0
    unknown: int = 0
    products: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    sync_version: int | None = None
    sync_log_id: int | None = None
    duration_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def restore_integration(
    integration_id: str,
    to_version: int,
    *,
    dry_run: bool = True,
    database_url: str | None = None,
    publisher: EventPublisher | None = None,
) -> RestorePlan:
    """Plan (``dry_run``) or apply the restore of every product of ``integration_id``.

    Raises :class:`UnknownVersion` when ``to_version`` is not one of the integration's sync
    versions and :class:`RestoreRefused` (applying only) while a sync of it runs.
    """
    url = resolve_database_url(database_url)
    started = time.monotonic()
    with sync_connection(url, integration_id, "restore") as conn:
        params: dict[str, Any] = {"integration": integration_id, "version": to_version}
        with conn.cursor() as cur:
            cur.execute(_IS_VERSION_SQL, params)
            if cur.fetchone() is None:
                cur.execute(_VERSIONS_SQL, params)
                raise UnknownVersion(integration_id, to_version, [r[0] for r in cur.fetchall()])
        if dry_run:
            conn.autocommit = False
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    return _plan(cur, integration_id, to_version, applied=False)
            finally:
                conn.rollback()
        locked: list[str] = []
        try:
            for entity in LOGGED_ENTITIES:
                if not try_lock(conn, integration_id, entity):
                    raise RestoreRefused(
                        f"a {entity} sync of integration {integration_id!r} is running; "
                        "restore after it finishes"
                    )
                locked.append(entity)
            return _apply(conn, url, integration_id, to_version, started, publisher)
        finally:
            for entity in locked:
                unlock(conn, integration_id, entity)


def _plan(cur: Any, integration_id: str, to_version: int, *, applied: bool) -> RestorePlan:
    params = {"integration": integration_id, "version": to_version, "limit": SHOWN_CHANGES}
    cur.execute(_SNAPSHOT_SQL, params)
    cur.execute(_SUMMARY_SQL, params)
    summary = cur.fetchone()
    plan = RestorePlan(integration_id, to_version, applied, **summary)
    cur.execute(_SHOWN_SQL, params)
    for row in cur.fetchall():
        snapshot = {k: v for k, v in row["snapshot"].items() if k in PRODUCT_FIELDS}
        plan.products.append(
            {
                "onec_id": row["onec_id"],
                "code": row["now_values"].get("code"),
                "name": row["now_values"].get("name"),
                "changes": field_changes(row["now_values"], {**row["now_values"], **snapshot}),
            }
        )
    plan.truncated = plan.changed > len(plan.products)
    return plan


def _apply(
    conn: Any,
    url: str,
    integration_id: str,
    to_version: int,
    started: float,
    publisher: EventPublisher | None,
) -> RestorePlan:
    engine = get_engine(url)
    run_id = f"restore:{to_version}"
    log_id = start_log(engine, integration_id, ENTITY, run_id, False)
    bus = publisher if publisher is not None else RedisEventBus.from_settings()
    event = {
        "integration_id": integration_id,
        "entity": ENTITY,
        "run_id": run_id,
        "sync_log_id": log_id,
    }
    publish(bus, "sync_updates", "sync.started", {**event, "full": False})
    conn.autocommit = False
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            plan = _plan(cur, integration_id, to_version, applied=True)
            cur.execute("SELECT nextval('sync_version_seq') AS v")
            plan.sync_version = int(cur.fetchone()["v"])
            params = {
                "integration": integration_id,
                "version": to_version,
                "new_version": plan.sync_version,
            }
            cur.execute(_APPLY_HISTORY_SQL, params)
            cur.execute(_APPLY_SQL, params)
            changed_ids = [r["onec_id"] for r in cur.fetchall()]
            cur.execute(
                _FINISH_SQL,
                {**params, "changed": plan.changed, "unchanged": plan.unchanged, "log_id": log_id},
            )
        conn.commit()
    except BaseException as exc:
        conn.rollback()
        reason = f"restore to sync version {to_version} failed: {type(exc).__name__}: {exc}"
        fail_log(engine, log_id, reason, RowCounts())
        publish(bus, "sync_updates", "sync.failed", {**event, "error": reason})
        raise
    finally:
        conn.autocommit = True
    plan.sync_log_id = log_id
    plan.duration_s = round(time.monotonic() - started, 3)
    publish_ids(
        bus,
        "product_updates",
        "product.updated",
        {"integration_id": integration_id, "sync_version": plan.sync_version},
        changed_ids,
        key="onec_ids",
    )
    publish(
        bus,
        "sync_updates",
        "sync.finished",
        {
            **event,
            "status": "success",
            "sync_version": plan.sync_version,
            "duration_s": plan.duration_s,
            "updated": plan.changed,
            "unchanged": plan.unchanged,
        },
    )
    return plan
