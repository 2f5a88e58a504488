"""What a run of the 1C sync looks like: the job per entity, its tags and its priority.

Schedules, sensors and :mod:`tradeos_pipelines.launch` all build runs here, so the queue limits
in ``dagster.yaml`` (keyed on these tags) apply to every run whatever started it.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from dagster import MultiPartitionKey

from tradeos_pipelines.onec_sync.partitions import orders_partition_key

Entity = Literal["nomenclature", "stock", "orders"]
RunSource = Literal["schedule", "change", "webhook", "manual"]

# What a person or 1C may ask to sync.
ENTITIES: tuple[Entity, ...] = ("nomenclature", "stock", "orders")

JOB_FOR_ENTITY: dict[Entity, str] = {
    "nomenclature": "nomenclature_sync",
    "stock": "stock_sync",
    "orders": "orders_sync",
}

TAG_INTEGRATION = "tradeos/integration"
TAG_ENTITY = "tradeos/entity"
# "<integration>:<entity>": dagster.yaml allows one run per unique value.
TAG_LANE = "tradeos/lane"
TAG_FULL = "tradeos/full"
TAG_SOURCE = "tradeos/source"
TAG_REQUEST = "tradeos/request"
PRIORITY_TAG = "dagster/priority"

# Higher runs first: a person waiting on "sync now" overtakes 1C's webhooks, which overtake
# change detection, which overtakes the schedules.
PRIORITY: dict[RunSource, int] = {"manual": 10, "webhook": 5, "change": 1, "schedule": 0}


class UnknownEntity(ValueError):
    """An entity name outside :data:`ENTITIES`."""


def validate_entities(entities: list[str] | tuple[str, ...]) -> list[Entity]:
    """The entities without duplicates, in the given order; a clear error for anything else."""
    if not entities:
        raise UnknownEntity(f"no entities given; expected some of {', '.join(ENTITIES)}")
    unknown = [e for e in entities if e not in ENTITIES]
    if unknown:
        raise UnknownEntity(
            f"unknown entit{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(repr(e) for e in unknown)}; expected some of {', '.join(ENTITIES)}"
        )
    return list(dict.fromkeys(entities))  # type: ignore[arg-type]


def lane(integration_id: str, entity: Entity) -> str:
    """The queue lane of an integration and entity (one run at a time per lane)."""
    return f"{integration_id}:{entity}"


def run_tags(
    integration_id: str,
    entity: Entity,
    *,
    full: bool,
    source: RunSource,
    request_id: int | None = None,
) -> dict[str, str]:
    """Tags of a sync run: what it syncs, its queue lane, whether it is full, who asked."""
    tags = {
        TAG_INTEGRATION: integration_id,
        TAG_ENTITY: entity,
        TAG_LANE: lane(integration_id, entity),
        TAG_FULL: "true" if full else "false",
        TAG_SOURCE: source,
        PRIORITY_TAG: str(PRIORITY[source]),
    }
    if request_id is not None:
        tags[TAG_REQUEST] = str(request_id)
    return tags


def partition_key_for(integration_id: str, entity: Entity, day: date) -> str | MultiPartitionKey:
    """The partition a run of ``entity`` syncs: the integration, or for orders the day too."""
    if entity == "orders":
        return orders_partition_key(integration_id, day)
    return integration_id
