"""Assets of the 1C sync: thin shells over the sync engine (:mod:`tradeos_pipelines.engine`).

Lineage as the UI draws it::

    onec/nomenclature ─▶ tradeos/products ─▶ tradeos/stock ◀─ onec/stock
    tradeos/orders ─▶ onec/order_export ─▶ tradeos/order_statuses ◀─ onec/orders

``onec/nomenclature``, ``onec/stock``, ``onec/orders`` and ``tradeos/orders`` are external: 1C
and TradeOS change them, Dagster only reads them. Every materialization reports what the
engine did (the ``sync_logs`` row it wrote), so the UI answers "what did this sync change?",
with a link to that operation on the dashboard.

``tradeos/full`` on a run says what was *requested* (it also picks the full-sync queue, before
the run starts). The engine reads everything anyway when it has no watermark yet (a first
sync), so the metadata reports both: ``full_requested`` (the tag) and ``full_read`` (what the
engine did), with ``full_read_reason`` when they differ.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlencode

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSpec,
    Config,
    DagsterEventType,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import ROW_COUNTERS, TAG_FULL
from tradeos_pipelines.defs.partitions import (
    integration_partitions_def,
    orders_partitions_def,
)
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.defs.retries import retry_or_fail, will_retry
from tradeos_pipelines.engine import (
    SyncFailed,
    SyncResult,
    export_orders,
    sync_nomenclature,
    sync_order_statuses,
    sync_stock,
)

OWNERS = ["team:integrations"]

onec_nomenclature = AssetSpec(
    key=["onec", "nomenclature"],
    description="Справочник «Номенклатура» in 1C, read through the HTTP service "
    "(GET /hs/api/nomenclature).",
    group_name="onec",
    kinds={"1c"},
    owners=OWNERS,
)
onec_stock = AssetSpec(
    key=["onec", "stock"],
    description="Free stock balances per product and warehouse in 1C (GET /hs/api/stock).",
    group_name="onec",
    kinds={"1c"},
    owners=OWNERS,
)
onec_orders = AssetSpec(
    key=["onec", "orders"],
    description="Customer orders (ЗаказКлиента) in 1C with their current status "
    "(GET /hs/api/orders).",
    group_name="onec",
    kinds={"1c"},
    owners=OWNERS,
)
tradeos_orders = AssetSpec(
    key=["tradeos", "orders"],
    description="Orders placed in TradeOS (table `orders`), waiting to be exported to 1C.",
    group_name="tradeos",
    kinds={"postgres"},
    owners=OWNERS,
)


class SyncConfig(Config):
    """Launchpad config of a sync run."""

    full: bool = Field(
        default=False,
        description="Read everything from 1C instead of what changed since the watermark. "
        "The run tag tradeos/full=true does the same and also puts the run in the "
        "full-sync queue.",
    )


def _wants_full(context: AssetExecutionContext, config: SyncConfig) -> bool:
    return config.full or context.run.tags.get(TAG_FULL) == "true"


def _order_partition(context: AssetExecutionContext) -> tuple[str, date]:
    key = orders_partitions_def.get_partition_key_from_str(context.partition_key)
    dims = key.keys_by_dimension
    return dims["integration"], date.fromisoformat(dims["date"])


def dashboard_link(integration_id: str, sync_log_id: int) -> str:
    """The dashboard's view of one operation (a ``sync_logs`` row); the page opens it."""
    query = urlencode({"integration": integration_id, "operation": sync_log_id})
    return f"{get_settings().dashboard_url()}/?{query}"


def _report(result: SyncResult, full_requested: bool) -> MaterializeResult:
    """The engine's counts as materialization metadata (the same numbers as ``sync_logs``)."""
    metadata: dict[str, Any] = {
        "status": result.status,
        **{counter: getattr(result, counter) for counter in ROW_COUNTERS},
        "duration_s": MetadataValue.float(float(result.duration_s)),
        "sync_version": result.sync_version,
        "sync_log_id": result.sync_log_id,
        "full_requested": full_requested,
        "full_read": result.full,
        "dashboard": MetadataValue.url(dashboard_link(result.integration_id, result.sync_log_id)),
    }
    if result.full and not full_requested:
        metadata["full_read_reason"] = "no watermark yet: the first sync reads everything"
    if result.onec_total is not None:
        metadata["onec_total"] = result.onec_total
    return MaterializeResult(metadata=metadata)


def _checks_not_evaluated(context: AssetExecutionContext, failed: SyncFailed) -> None:
    """Resolve this asset's planned checks as "not evaluated: the sync failed".

    A failed run marks the checks it planned but never ran as failed executions, red as if
    the data were wrong; a sync that failed wrote nothing, so there is nothing new to judge.
    """
    planned = context.instance.get_records_for_run(
        context.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    ).records
    for record in planned:
        event = record.event_log_entry.dagster_event
        check = event.event_specific_data if event is not None else None
        if check is None or check.asset_key != context.asset_key:
            continue
        context.log_event(
            AssetCheckEvaluation(
                asset_key=check.asset_key,
                check_name=check.check_name,
                passed=True,
                severity=AssetCheckSeverity.WARN,
                description=f"not evaluated: the sync failed, no data was written ({failed})",
                metadata={"evaluated": False, "sync_log_id": failed.sync_log_id},
                partition=context.partition_key,
            )
        )


def _run_sync(
    what: str,
    sync: Callable[..., SyncResult],
    *args: Any,
    context: AssetExecutionContext,
    tradeos: TradeOSResource,
    full: bool | None = None,
    **kwargs: Any,
) -> MaterializeResult:
    """Call one engine function for this run's partition and report what it did."""
    integration_id = args[0]
    if full is not None:
        kwargs["full"] = full
    with tradeos.event_bus() as bus:
        try:
            result = sync(
                *args,
                run_id=context.run_id,
                database_url=tradeos.database_url,
                publisher=bus,
                **kwargs,
            )
        except SyncFailed as exc:
            # sync_logs already says "failed" with the reason; the UI shows the same sentence.
            # A transient failure (1C down past its retry budget, circuit open) is retried.
            if not will_retry(context, exc):
                _checks_not_evaluated(context, exc)
            link = MetadataValue.url(dashboard_link(integration_id, exc.sync_log_id))
            retry_or_fail(
                context,
                f"{what} sync of {integration_id!r} failed: {exc}",
                exc,
                metadata={"dashboard": link},
            )
    return _report(result, full_requested=bool(full))


@asset(
    key_prefix="tradeos",
    name="products",
    deps=[onec_nomenclature],
    partitions_def=integration_partitions_def,
    group_name="tradeos",
    kinds={"postgres"},
    owners=OWNERS,
    description="TradeOS catalogue (`products`, `product_groups`) mirrored from 1C "
    "nomenclature; one partition per integration.",
)
def tradeos_products(
    context: AssetExecutionContext, config: SyncConfig, tradeos: TradeOSResource
) -> MaterializeResult:
    """Sync 1C nomenclature into TradeOS products (incremental unless full)."""
    return _run_sync(
        "nomenclature",
        sync_nomenclature,
        context.partition_key,
        full=_wants_full(context, config),
        context=context,
        tradeos=tradeos,
    )


@asset(
    key_prefix="tradeos",
    name="stock",
    deps=[onec_stock, tradeos_products],
    partitions_def=integration_partitions_def,
    group_name="tradeos",
    kinds={"postgres"},
    owners=OWNERS,
    description="TradeOS stock balances (`stock`, `warehouses`) from 1C; a full pass is a "
    "snapshot (pairs absent in 1C become zero). Needs the products it refers to.",
)
def tradeos_stock(
    context: AssetExecutionContext, config: SyncConfig, tradeos: TradeOSResource
) -> MaterializeResult:
    """Sync 1C free stock into TradeOS (incremental unless full)."""
    return _run_sync(
        "stock",
        sync_stock,
        context.partition_key,
        full=_wants_full(context, config),
        context=context,
        tradeos=tradeos,
    )


@asset(
    key_prefix="onec",
    name="order_export",
    deps=[tradeos_orders],
    partitions_def=orders_partitions_def,
    group_name="onec",
    kinds={"1c"},
    owners=OWNERS,
    description="TradeOS orders of one day created in 1C (POST /hs/api/orders, the order "
    "UUID as external_id, so a retry never duplicates). Partition: integration × day.",
)
def onec_order_export(
    context: AssetExecutionContext, tradeos: TradeOSResource
) -> MaterializeResult:
    """Export the day's waiting TradeOS orders to 1C."""
    integration_id, day = _order_partition(context)
    return _run_sync(
        "order export", export_orders, integration_id, day, context=context, tradeos=tradeos
    )


@asset(
    key_prefix="tradeos",
    name="order_statuses",
    deps=[onec_order_export, onec_orders],
    partitions_def=orders_partitions_def,
    group_name="tradeos",
    kinds={"postgres"},
    owners=OWNERS,
    description="1C number and status of the day's TradeOS orders, read back from 1C. "
    "Partition: integration × day.",
)
def tradeos_order_statuses(
    context: AssetExecutionContext, config: SyncConfig, tradeos: TradeOSResource
) -> MaterializeResult:
    """Read the 1C status of the day's orders back into TradeOS."""
    integration_id, day = _order_partition(context)
    return _run_sync(
        "order status",
        sync_order_statuses,
        integration_id,
        day,
        full=_wants_full(context, config),
        context=context,
        tradeos=tradeos,
    )


external_specs = [onec_nomenclature, onec_stock, onec_orders, tradeos_orders]
sync_assets = [tradeos_products, tradeos_stock, onec_order_export, tradeos_order_statuses]
