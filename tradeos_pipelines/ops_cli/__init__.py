"""The operator's side of ``tradeos``: integrations, sync, status, logs over the sidecar's API.

:func:`register` adds the commands to the ``tradeos`` parser (:mod:`tradeos_pipelines.cli`).
Nothing here reads the database or Redis: every answer comes from the sidecar's REST API and
WebSocket, so the same commands run against a remote deployment.
"""

from tradeos_pipelines.ops_cli.commands import register

__all__ = ["register"]
