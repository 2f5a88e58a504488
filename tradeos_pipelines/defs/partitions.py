"""Partitions of the 1C sync: one dynamic partition per integration; orders also by day."""

from __future__ import annotations

from datetime import date

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import INTEGRATION_PARTITIONS

# Keys are integration ids (slugs); the partition sensor keeps them equal to `integrations`.
integration_partitions_def = DynamicPartitionsDefinition(name=INTEGRATION_PARTITIONS)

# The first day offered (TRADEOS_ORDERS_PARTITIONS_START, default the first day of the previous
# month): a start far in the past made the UI list hundreds of "Missing" days per integration.
# Moving the start changes which days are listed, never a key's form ("<day>|<integration>").
ORDERS_START_DATE = get_settings().orders_partitions_start_date(today_in_schedule_timezone())

# `end_offset=1` makes today's partition exist: the 15-minute schedule exports today's orders.
order_days_partitions_def = DailyPartitionsDefinition(
    start_date=ORDERS_START_DATE.isoformat(),
    timezone=get_settings().schedule_timezone,
    end_offset=1,
)

orders_partitions_def = MultiPartitionsDefinition(
    {"integration": integration_partitions_def, "date": order_days_partitions_def}
)


def orders_partition_key(integration_id: str, day: date) -> MultiPartitionKey:
    """The orders partition of one integration and day."""
    return MultiPartitionKey({"integration": integration_id, "date": day.isoformat()})
