"""``integration_partitions``: keeps the dynamic partition keys equal to the ``integrations``
table (disabled integrations keep their partition; schedules and sensors skip them)."""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.defs.partitions import integration_partitions_def
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.defs.sensors.lanes import known_partitions
from tradeos_pipelines.storage.integrations import list_integration_ids

_settings = get_settings()

PARTITIONS_SENSOR = "integration_partitions"


@sensor(
    name=PARTITIONS_SENSOR,
    minimum_interval_seconds=max(10, _settings.request_sensor_interval_seconds),
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new integration and removes deleted ones.",
)
def integration_partitions_sensor(
    context: SensorEvaluationContext, tradeos: TradeOSResource
) -> SensorResult | SkipReason:
    """Reconcile the ``integrations`` dynamic partitions with the ``integrations`` table."""
    with tradeos.session() as session:
        wanted = set(list_integration_ids(session, enabled_only=False))
    existing = known_partitions(context.instance)
    added, removed = sorted(wanted - existing), sorted(existing - wanted)
    if not added and not removed:
        return SkipReason(f"partitions already match the {len(wanted)} integrations")
    requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(integration_partitions_def.build_add_request(added))
        context.log.info("adding partitions %s", ", ".join(added))
    if removed:
        requests.append(integration_partitions_def.build_delete_request(removed))
        context.log.info("removing partitions of deleted integrations %s", ", ".join(removed))
    return SensorResult(dynamic_partitions_requests=requests)
