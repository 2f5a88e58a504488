"""What the sensors share: the run states that cover a lane, and the partitions Dagster knows."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from tradeos_pipelines.core.vocabulary import (
    TAG_LANE,
    lane,
)
from tradeos_pipelines.defs.partitions import integration_partitions_def

# Runs that have not started yet: a new request for the same lane is already covered by them.
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
IN_FLIGHT = [*WAITING, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def known_partitions(instance: DagsterInstance) -> set[str]:
    """The integration partition keys Dagster has now."""
    return set(instance.get_dynamic_partitions(integration_partitions_def.name))


def lane_runs(
    instance: DagsterInstance, integration_id: str, entity: str, statuses: list[DagsterRunStatus]
) -> Sequence:
    """The lane's latest runs in ``statuses`` (newest first)."""
    return instance.get_runs(
        filters=RunsFilter(tags={TAG_LANE: lane(integration_id, entity)}, statuses=statuses),
        limit=20,
    )
