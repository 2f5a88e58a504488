"""Sensors (running by default) of the 1C sync, one module each.

- ``integration_partitions`` (:mod:`.partitions`): keeps the dynamic partition keys equal to
  the ``integrations`` table.
- ``sync_requests`` (:mod:`.requests`): turns ``sync_requests`` rows (1C webhooks, "sync now"
  while the webserver was down) into runs within seconds.
- ``onec_changes`` (:mod:`.changes`): asks each enabled integration's 1C whether anything
  changed since the committed watermark and requests runs only for what changed.
- ``sync_failure_alerts`` (:mod:`.failures`): publishes an ``alert`` event after repeated
  failures of one integration and entity.
"""

from tradeos_pipelines.defs.sensors.changes import onec_change_sensor
from tradeos_pipelines.defs.sensors.failures import failure_streak, sync_failure_alerts
from tradeos_pipelines.defs.sensors.partitions import integration_partitions_sensor
from tradeos_pipelines.defs.sensors.requests import request_run_key, sync_requests_sensor

__all__ = [
    "failure_streak",
    "integration_partitions_sensor",
    "onec_change_sensor",
    "request_run_key",
    "sync_failure_alerts",
    "sync_requests_sensor",
    "sync_sensors",
]

sync_sensors = [
    integration_partitions_sensor,
    sync_requests_sensor,
    onec_change_sensor,
    sync_failure_alerts,
]
