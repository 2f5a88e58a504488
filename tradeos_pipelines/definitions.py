"""The Dagster code location: everything the UI shows for the TradeOS ⇄ 1C sync.

Load it with ``dagster dev -m tradeos_pipelines.definitions`` or through ``workspace.yaml``.
"""

from __future__ import annotations

from dagster import Definitions

from tradeos_pipelines.defs.alert_sensors import sync_health_alerts
from tradeos_pipelines.defs.assets import external_specs, sync_assets
from tradeos_pipelines.defs.checks import sync_checks
from tradeos_pipelines.defs.jobs import sync_jobs
from tradeos_pipelines.defs.resources import tradeos_resource_from_env
from tradeos_pipelines.defs.schedules import sync_schedules
from tradeos_pipelines.defs.sensors import sync_sensors

defs = Definitions(
    assets=[*external_specs, *sync_assets],
    asset_checks=sync_checks,
    jobs=sync_jobs,
    schedules=sync_schedules,
    sensors=[*sync_sensors, sync_health_alerts],
    resources={"tradeos": tradeos_resource_from_env()},
)
