"""The words every layer shares, defined once: entities, row counters, run tags, priorities.

The engine, the Dagster definitions, the sidecar's schemas and the CLI import these names
instead of spelling them again; ``tests/test_layers.py`` fails if a second definition appears.
Nothing here imports Dagster: the sidecar builds run tags and partition keys from this module
without loading the code location.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Literal, get_args

# ----- entities -----------------------------------------------------------------------------
# What a person, a schedule or 1C may ask to sync.
Entity = Literal["nomenclature", "stock", "orders"]
ENTITIES: tuple[Entity, ...] = get_args(Entity)

# What ``sync_logs.entity`` holds: the entities above, and the export of TradeOS orders
# to 1C (part of an ``orders`` run, logged on its own).
LoggedEntity = Literal["nomenclature", "stock", "orders", "order_export"]
LOGGED_ENTITIES: tuple[LoggedEntity, ...] = get_args(LoggedEntity)
ORDER_EXPORT: LoggedEntity = "order_export"

# ``sync_logs.status``.
SyncStatus = Literal["running", "success", "partial", "failed"]
SYNC_STATUSES: tuple[SyncStatus, ...] = get_args(SyncStatus)


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


# ----- row counters -------------------------------------------------------------------------
# The seven numbers every entity sync reports: in ``sync_logs``, the engine's result, the
# Dagster materialization, the API's schemas and the statistics.
ROW_COUNTERS = ("fetched", "created", "updated", "unchanged", "deleted", "conflicts", "rejected")


@dataclass
class RowCounts:
    """Row counts of one entity sync (fields named as :data:`ROW_COUNTERS`)."""

    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    conflicts: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# ----- runs ---------------------------------------------------------------------------------
RunSource = Literal["schedule", "change", "webhook", "manual", "backfill"]

# The Dagster job that syncs each entity.
JOB_FOR_ENTITY: dict[Entity, str] = {
    "nomenclature": "nomenclature_sync",
    "stock": "stock_sync",
    "orders": "orders_sync",
}

TAG_INTEGRATION = "tradeos/integration"
TAG_ENTITY = "tradeos/entity"
# "<integration>:<entity>": what the sensors look up to see whether a lane is busy.
TAG_LANE = "tradeos/lane"
# "tradeos/lane/<entity>" = "<integration>": the keys dagster.yaml limits to one run per unique
# value. One key per entity, so a run that syncs two entities (a Dagster UI Materialize of
# products and stock together) carries both and waits until both lanes are free.
LANE_TAG_PREFIX = "tradeos/lane/"
TAG_FULL = "tradeos/full"
TAG_SOURCE = "tradeos/source"
TAG_REQUEST = "tradeos/request"
PRIORITY_TAG = "dagster/priority"

# Higher runs first: a person waiting on "sync now" overtakes 1C's webhooks, which overtake
# change detection, which overtakes the schedules.
# A backfill started from the Dagster UI is bulk work: it waits behind everything else.
PRIORITY: dict[RunSource, int] = {
    "manual": 10,
    "webhook": 5,
    "change": 1,
    "schedule": 0,
    "backfill": -1,
}

# Names the Dagster code location gives its partitions; the run tags Dagster derives from a
# partition key (``dagster/partition`` and, for the orders' two dimensions, one per
# dimension). ``tests/dagster/test_definitions.py`` checks these agree with Dagster's own.
INTEGRATION_PARTITIONS = "integrations"
PARTITION_TAG = "dagster/partition"


def lane(integration_id: str, entity: Entity) -> str:
    """The queue lane of an integration and entity (one run at a time per lane)."""
    return f"{integration_id}:{entity}"


def lane_tag(entity: Entity) -> str:
    """The tag key that holds the integration of a run syncing ``entity`` (see dagster.yaml)."""
    return f"{LANE_TAG_PREFIX}{entity}"


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
        lane_tag(entity): integration_id,
        TAG_FULL: "true" if full else "false",
        TAG_SOURCE: source,
        PRIORITY_TAG: str(PRIORITY[source]),
    }
    if request_id is not None:
        tags[TAG_REQUEST] = str(request_id)
    return tags


def partition_key(integration_id: str, entity: Entity, day: date) -> str:
    """The partition key a run of ``entity`` syncs: the integration, or for orders
    ``<day>|<integration>`` (Dagster orders a multi-partition key's dimensions by name)."""
    if entity == "orders":
        return f"{day.isoformat()}|{integration_id}"
    return integration_id


def partition_tags(integration_id: str, entity: Entity, day: date) -> dict[str, str]:
    """The run tags Dagster gives a run of that partition."""
    key = partition_key(integration_id, entity, day)
    if entity != "orders":
        return {PARTITION_TAG: key}
    return {
        PARTITION_TAG: key,
        f"{PARTITION_TAG}/date": day.isoformat(),
        f"{PARTITION_TAG}/integration": integration_id,
    }
