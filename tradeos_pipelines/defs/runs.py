"""The Dagster partition key of a sync run (the run's tags and lanes: core.vocabulary)."""

from __future__ import annotations

from datetime import date

from dagster import MultiPartitionKey

from tradeos_pipelines.core.vocabulary import Entity
from tradeos_pipelines.defs.partitions import orders_partition_key


def partition_key_for(integration_id: str, entity: Entity, day: date) -> str | MultiPartitionKey:
    """The partition a run of ``entity`` syncs: the integration, or for orders the day too."""
    if entity == "orders":
        return orders_partition_key(integration_id, day)
    return integration_id
