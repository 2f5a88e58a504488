"""Partitions of the 1C sync: one dynamic partition per integration; orders also by day."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from tradeos_pipelines.settings import get_settings

# Keys are integration ids (slugs); the partition sensor keeps them equal to `integrations`.
integration_partitions_def = DynamicPartitionsDefinition(name="integrations")

# Orders before this day are not offered for backfill (TradeOS started exporting in 2025).
ORDERS_START_DATE = "2025-01-01"

# `end_offset=1` makes today's partition exist: the 15-minute schedule exports today's orders.
order_days_partitions_def = DailyPartitionsDefinition(
    start_date=ORDERS_START_DATE,
    timezone=get_settings().schedule_timezone,
    end_offset=1,
)

orders_partitions_def = MultiPartitionsDefinition(
    {"integration": integration_partitions_def, "date": order_days_partitions_def}
)


def today_in_schedule_timezone() -> date:
    """Today's date where the schedules run (``TRADEOS_SCHEDULE_TIMEZONE``)."""
    return datetime.now(ZoneInfo(get_settings().schedule_timezone)).date()


def orders_partition_key(integration_id: str, day: date) -> MultiPartitionKey:
    """The orders partition of one integration and day."""
    return MultiPartitionKey({"integration": integration_id, "date": day.isoformat()})
