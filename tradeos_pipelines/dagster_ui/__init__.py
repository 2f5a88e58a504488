"""The Dagster UI as TradeOS serves it: dagster-webserver behind :class:`DagsterGuard`.

``python -m tradeos_pipelines.dagster_ui -w workspace.yaml -h 127.0.0.1 -p 3000`` takes
dagster-webserver's own options; ``tradeos dev`` and docker-compose start it this way.
"""

from tradeos_pipelines.dagster_ui.guard import DagsterGuard, GuardPolicy

__all__ = ["DagsterGuard", "GuardPolicy"]
