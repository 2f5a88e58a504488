"""Fixtures for the Dagster code location tests: the resource and partitions on a real instance."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dagster import DagsterInstance

from tradeos_pipelines.defs.partitions import integration_partitions_def
from tradeos_pipelines.defs.resources import TradeOSResource


@pytest.fixture
def tradeos(db: str, redis_url: str) -> TradeOSResource:
    """The resource the assets and sensors get, on this session's database and Redis."""
    return TradeOSResource(database_url=db, redis_url=redis_url)


@pytest.fixture
def instance(dagster_instance: DagsterInstance) -> DagsterInstance:
    """The session's instance with no runs, events or partitions left by earlier tests, and
    every sensor and schedule back to its default state (a test that stopped a sensor must
    not leave it stopped for the next one)."""
    dagster_instance.wipe()
    for state in dagster_instance.all_instigator_state():
        dagster_instance.delete_instigator_state(state.instigator_origin_id, state.selector_id)
    return dagster_instance


@pytest.fixture
def partitions(instance: DagsterInstance) -> Callable[..., None]:
    """Set the instance's integration partitions to exactly the given keys."""

    def set_keys(*keys: str) -> None:
        name = integration_partitions_def.name
        for key in instance.get_dynamic_partitions(name):
            instance.delete_dynamic_partition(name, key)
        if keys:
            instance.add_dynamic_partitions(name, list(keys))

    return set_keys
