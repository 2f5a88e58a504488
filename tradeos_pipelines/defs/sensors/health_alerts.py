"""``sync_health_alerts``: the database-side alert rules, beside ``sync_failure_alerts``.

Every minute it evaluates :mod:`tradeos_pipelines.alerts.rules` (stale syncs, conflicts left
waiting) and publishes on the ``alerts`` channel an ``alert`` for each incident that is new and
an ``alert.resolved`` for each one that is over. Its cursor is the list of open incidents, so
an incident is announced once however many ticks it lasts.
"""

import json
from datetime import UTC, datetime

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from tradeos_pipelines.alerts.rules import evaluate
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.defs.resources import TradeOSResource

SYNC_HEALTH_INTERVAL_SECONDS = 60


@sensor(
    name="sync_health_alerts",
    minimum_interval_seconds=SYNC_HEALTH_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts when an entity has not synced successfully for TRADEOS_ALERT_STALE_FACTOR "
    "× its schedule, or conflicts wait longer than TRADEOS_ALERT_CONFLICT_HOURS; and when "
    "either is over.",
)
def sync_health_alerts(context: SensorEvaluationContext, tradeos: TradeOSResource) -> SkipReason:
    """Publish new and resolved incidents; say what is open in the skip reason."""
    previous: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
    with tradeos.session() as session:
        current = {a.incident: a for a in evaluate(session, get_settings(), datetime.now(UTC))}
    opened = [a for key, a in current.items() if key not in previous]
    resolved = [key for key in previous if key not in current]
    if opened or resolved:
        with tradeos.event_bus() as bus:
            for alert in opened:
                bus.publish("alerts", "alert", alert.event_data())
            for key in resolved:
                was = previous[key]
                bus.publish(
                    "alerts",
                    "alert.resolved",
                    {**was, "incident": key, "message": f"снова в норме: {was.get('message')}"},
                )
    # Only what a resolution needs to say which integration and entity it was about.
    cursor = {
        key: {
            "integration_id": a.integration_id,
            "entity": a.entity,
            "kind": a.kind,
            "message": a.message,
        }
        for key, a in current.items()
    }
    context.update_cursor(json.dumps(cursor, sort_keys=True))
    if not current:
        return SkipReason("every enabled integration synced within its limits; no old conflicts")
    names = ", ".join(sorted(current))
    return SkipReason(f"{len(current)} open: {names} ({len(opened)} new, {len(resolved)} over)")
