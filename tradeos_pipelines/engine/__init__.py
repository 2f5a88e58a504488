"""The sync engine: 1C → TradeOS (nomenclature, stock, order statuses) and TradeOS → 1C (orders).

Plain Python, callable without Dagster; the Dagster assets and the sidecar are thin shells over
these functions. Each entity sync commits as a whole or not at all and reports a
:class:`SyncResult`; when it cannot commit it raises :class:`SyncFailed` after ``sync_logs`` says
``failed`` with the reason. How a sync runs: :mod:`tradeos_pipelines.engine.runner`.
"""

from __future__ import annotations

import functools
from datetime import date

from tradeos_pipelines.engine import nomenclature, orders, stock
from tradeos_pipelines.engine.conflicts import resolve_conflict
from tradeos_pipelines.engine.history import restore_product_version
from tradeos_pipelines.engine.result import (
    ConflictNotFound,
    ConflictNotOpen,
    SyncFailed,
    SyncResult,
    VersionNotFound,
)
from tradeos_pipelines.engine.runner import run_entity_sync
from tradeos_pipelines.event_bus import EventPublisher

__all__ = [
    "ConflictNotFound",
    "ConflictNotOpen",
    "SyncFailed",
    "SyncResult",
    "VersionNotFound",
    "export_orders",
    "resolve_conflict",
    "restore_product_version",
    "sync_nomenclature",
    "sync_order_statuses",
    "sync_stock",
]


def sync_nomenclature(
    integration_id: str,
    *,
    full: bool = False,
    run_id: str | None = None,
    database_url: str | None = None,
    publisher: EventPublisher | None = None,
) -> SyncResult:
    """Sync 1C's catalogue into ``products`` / ``product_groups`` (incremental unless ``full``
    or the first run)."""
    return run_entity_sync(
        nomenclature.ENTITY,
        integration_id,
        nomenclature.sync_body,
        full=full,
        run_id=run_id,
        database_url=database_url,
        publisher=publisher,
    )


def sync_stock(
    integration_id: str,
    *,
    full: bool = False,
    run_id: str | None = None,
    database_url: str | None = None,
    publisher: EventPublisher | None = None,
) -> SyncResult:
    """Sync 1C's free stock into ``stock`` / ``warehouses`` (a full pass is a snapshot)."""
    return run_entity_sync(
        stock.ENTITY,
        integration_id,
        stock.sync_body,
        full=full,
        run_id=run_id,
        database_url=database_url,
        publisher=publisher,
    )


def export_orders(
    integration_id: str,
    day: date | None,
    *,
    run_id: str | None = None,
    database_url: str | None = None,
    publisher: EventPublisher | None = None,
) -> SyncResult:
    """Send TradeOS orders waiting for export (of ``day`` in the integration's time zone, or
    all when None) to 1C; entity ``order_export``."""
    return run_entity_sync(
        orders.EXPORT_ENTITY,
        integration_id,
        functools.partial(orders.export_body, day=day),
        full=False,
        run_id=run_id,
        database_url=database_url,
        publisher=publisher,
    )


def sync_order_statuses(
    integration_id: str,
    day: date | None,
    *,
    full: bool = False,
    run_id: str | None = None,
    database_url: str | None = None,
    publisher: EventPublisher | None = None,
) -> SyncResult:
    """Bring 1C's number and status of exported orders into TradeOS; entity ``orders``.

    Reads 1C orders changed since the watermark, or since the start of ``day`` when that is
    earlier, so every change to that day's orders is covered.
    """
    return run_entity_sync(
        orders.STATUS_ENTITY,
        integration_id,
        functools.partial(orders.status_body, day=day),
        full=full,
        run_id=run_id,
        database_url=database_url,
        publisher=publisher,
    )
