"""Data-quality checks run after each sync, per partition (integration, or integration × day)."""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    asset_check,
)
from sqlalchemy import func, select

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.defs.assets import onec_order_export, tradeos_products, tradeos_stock
from tradeos_pipelines.defs.partitions import (
    integration_partitions_def,
    orders_partitions_def,
)
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.storage.tables import (
    Integration,
    Order,
    Product,
    ProductGroup,
    Stock,
    SyncState,
)

# Examples shown in the UI when a check fails (enough to start looking, never the whole list).
SAMPLE = 10


@asset_check(
    asset=tradeos_stock,
    partitions_def=integration_partitions_def,
    description="No stock row has a negative available quantity.",
)
def no_negative_available_stock(
    context: AssetCheckExecutionContext, tradeos: TradeOSResource
) -> AssetCheckResult:
    """Negative ``available`` means 1C reserved more than it holds, or a sync mixed rows up."""
    integration_id = context.partition_key
    with tradeos.session() as session:
        negative = Stock.available < 0
        count = session.scalar(
            select(func.count())
            .select_from(Stock)
            .where(Stock.integration_id == integration_id, negative)
        )
        sample = session.execute(
            select(Product.code, Stock.available)
            .join(Product, Product.id == Stock.product_id)
            .where(Stock.integration_id == integration_id, negative)
            .limit(SAMPLE)
        ).all()
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "negative_rows": count or 0,
            "examples": [f"{code}: {available}" for code, available in sample],
        },
    )


@asset_check(
    asset=tradeos_stock,
    partitions_def=integration_partitions_def,
    description="Every stock row refers to a product of the same integration.",
)
def stock_rows_have_known_product(
    context: AssetCheckExecutionContext, tradeos: TradeOSResource
) -> AssetCheckResult:
    """The foreign key proves the product exists; this proves it is this integration's."""
    integration_id = context.partition_key
    with tradeos.session() as session:
        orphans = session.scalar(
            select(func.count())
            .select_from(Stock)
            .outerjoin(
                Product,
                (Product.id == Stock.product_id) & (Product.integration_id == Stock.integration_id),
            )
            .where(Stock.integration_id == integration_id, Product.id.is_(None))
        )
    return AssetCheckResult(passed=orphans == 0, metadata={"orphan_rows": orphans or 0})


@asset_check(
    asset=tradeos_products,
    partitions_def=integration_partitions_def,
    description="TradeOS holds every catalogue row 1C counted in its last full pass "
    "(sync_state.onec_total): exactly as many right after a full pass.",
)
def product_count_matches_onec_total(
    context: AssetCheckExecutionContext, tradeos: TradeOSResource
) -> AssetCheckResult:
    """Compare products + groups with 1C's ``total``.

    1C never deletes catalogue rows (it marks them), so between full passes TradeOS can only
    have more rows than that total (items created since), never fewer.
    """
    integration_id = context.partition_key
    with tradeos.session() as session:
        state = session.get(SyncState, (integration_id, "nomenclature"))
        products = session.scalar(
            select(func.count())
            .select_from(Product)
            .where(Product.integration_id == integration_id)
        )
        groups = session.scalar(
            select(func.count())
            .select_from(ProductGroup)
            .where(ProductGroup.integration_id == integration_id)
        )
    tradeos_count = (products or 0) + (groups or 0)
    if state is None or state.onec_total is None:
        return AssetCheckResult(
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description="no full pass yet, nothing to compare with",
            metadata={"tradeos_count": tradeos_count},
        )
    just_full = state.last_full_sync_at is not None and (
        state.last_full_sync_at == state.last_success_at
    )
    passed = tradeos_count == state.onec_total if just_full else tradeos_count >= state.onec_total
    return AssetCheckResult(
        passed=passed,
        metadata={
            "tradeos_count": tradeos_count,
            "products": products or 0,
            "groups": groups or 0,
            "onec_total": state.onec_total,
            "compared_after_full_pass": just_full,
        },
    )


@asset_check(
    asset=onec_order_export,
    partitions_def=orders_partitions_def,
    description="No order of the day is stuck in export_failed (1C refused it; a person must "
    "fix and resend it).",
)
def no_orders_stuck_in_export_failed(
    context: AssetCheckExecutionContext, tradeos: TradeOSResource
) -> AssetCheckResult:
    """A warning, not an error: the other orders went through."""
    key = orders_partitions_def.get_partition_key_from_str(context.partition_key)
    integration_id = key.keys_by_dimension["integration"]
    day = date.fromisoformat(key.keys_by_dimension["date"])
    with tradeos.session() as session:
        # The day as the engine exports it: in the integration's (1C server's) time zone.
        integration = session.get(Integration, integration_id)
        zone = ZoneInfo(integration.timezone if integration else get_settings().schedule_timezone)
        start = datetime.combine(day, time.min, tzinfo=zone)
        stuck = session.execute(
            select(Order.id, Order.export_error).where(
                Order.integration_id == integration_id,
                Order.status == "export_failed",
                Order.order_date >= start,
                Order.order_date < start + timedelta(days=1),
            )
        ).all()
    return AssetCheckResult(
        passed=not stuck,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "export_failed": len(stuck),
            "examples": [f"{order_id}: {error}" for order_id, error in stuck[:SAMPLE]],
        },
    )


sync_checks = [
    no_negative_available_stock,
    stock_rows_have_known_product,
    product_count_matches_onec_total,
    no_orders_stuck_in_export_failed,
]
