"""``sync_failure_alerts``: publishes an ``alert`` event after repeated failures of one
integration and entity."""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    run_failure_sensor,
)

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import (
    TAG_ENTITY,
    TAG_INTEGRATION,
    TAG_LANE,
    lane,
)
from tradeos_pipelines.defs.jobs import sync_jobs
from tradeos_pipelines.defs.resources import TradeOSResource


def failure_streak(instance: DagsterInstance, integration_id: str, entity: str) -> int:
    """How many of the lane's latest finished runs failed in a row."""
    streak = 0
    runs = instance.get_runs(
        filters=RunsFilter(
            tags={TAG_LANE: lane(integration_id, entity)},
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=100,
    )
    for run in runs:
        if run.status != DagsterRunStatus.FAILURE:
            break
        streak += 1
    return streak


@run_failure_sensor(
    name="sync_failure_alerts",
    monitored_jobs=sync_jobs,
    default_status=DefaultSensorStatus.RUNNING,
    description="Publishes an alert event after repeated failed runs of an integration and "
    "entity (TRADEOS_ALERT_FAILURE_STREAK in a row, then again every as many).",
)
def sync_failure_alerts(context: RunFailureSensorContext, tradeos: TradeOSResource) -> None:
    """Alert the admin app (channel ``alerts``) when one lane keeps failing."""
    run = context.dagster_run
    integration_id = run.tags.get(TAG_INTEGRATION)
    entity = run.tags.get(TAG_ENTITY)
    if not integration_id or not entity:
        return
    streak = failure_streak(context.instance, integration_id, entity)
    threshold = get_settings().alert_failure_streak
    if streak < threshold or streak % threshold:
        return
    error = (context.failure_event.message or "")[:500]
    with tradeos.event_bus() as bus:
        bus.publish(
            "alerts",
            "alert",
            {
                "integration_id": integration_id,
                "entity": entity,
                "severity": "error",
                "failures": streak,
                "run_id": run.run_id,
                "message": f"{entity} sync of {integration_id} failed {streak} times in a row",
                "error": error,
            },
        )
