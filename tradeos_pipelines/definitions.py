"""The Dagster code location: everything the UI shows for the TradeOS ⇄ 1C sync.

Load it with ``dagster dev -m tradeos_pipelines.definitions`` or through ``workspace.yaml``.

Every run executes in process, however it was started: the named sync jobs, and the implicit
asset job behind the UI's Materialize, Re-execute and backfills. Dagster's default multiprocess
executor starts a Python process per step and asset check, each importing Dagster and this code
location again (a UI products run took 42 s for 0.8 s of work); a sync's steps run in order
anyway.

A run process imports this module first, so it imports only what a sync needs: no sidecar
(``api``, FastAPI, uvicorn), no migrations (Alembic), no pandas.
``tests/dagster/test_import_budget.py`` holds it to that.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

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
    sensors=sync_sensors,
    resources={"tradeos": tradeos_resource_from_env()},
    executor=in_process_executor,
)
