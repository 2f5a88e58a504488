"""Partitions of the 1C sync: one dynamic partition per integration; orders also by day."""

from __future__ import annotations

from datetime import date

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import INTEGRATION_PARTITIONS

# Keys are integration ids (slugs); the partition sensor keeps them equal to `integrations`.
integration_partitions_def = DynamicPartitionsDefinition(name=INTEGRATION_PARTITIONS)

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


def orders_partition_key(integration_id: str, day: date) -> MultiPartitionKey:
    """The orders partition of one integration and day."""
    return MultiPartitionKey({"integration": integration_id, "date": day.isoformat()})
