"""What a sidecar process runs besides its routes: Redis clients, the relay, the run watcher.

One :class:`Runtime` per process. ``create_app()`` starts and stops its own when none is given;
``api.server`` creates one and shares it between the REST app (port 8000) and the WebSocket
app (port 8001), so both ports serve the same connections from one Redis reader.
"""

from __future__ import annotations

import logging
import os

import httpx
import redis.asyncio as aioredis

from api.live.manager import ConnectionManager
from api.live.relay import StreamRelay
from api.live.revocation import RevocationWatcher
from api.live.run_watcher import RunWatcher
from tradeos_pipelines.alerts.deliverer import AlertDeliverer
from tradeos_pipelines.core.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class Runtime:
    """Process-wide resources of the sidecar."""

    def __init__(self, settings: Settings | None = None, *, watch_runs: bool | None = None) -> None:
        self.settings = settings or get_settings()
        # The watcher needs a Dagster instance; without DAGSTER_HOME there is none to watch.
        self.watch_runs = bool(os.environ.get("DAGSTER_HOME")) if watch_runs is None else watch_runs
        self.manager = ConnectionManager(
            queue_size=self.settings.ws_send_queue_size,
            heartbeat_seconds=self.settings.ws_heartbeat_seconds,
        )
        self.redis: aioredis.Redis
        self.relay: StreamRelay
        self.revocations: RevocationWatcher
        self.http: httpx.AsyncClient
        self.watcher: RunWatcher | None = None
        self.alerts: AlertDeliverer | None = None
        self.started = False

    async def start(self) -> None:
        """Connect to Redis, start the relay, the heartbeat and (with DAGSTER_HOME) the watcher."""
        s = self.settings
        self.redis = aioredis.Redis.from_url(s.require_redis_url(), health_check_interval=30)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(3.0))
        self.relay = StreamRelay(self.redis, s.redis_namespace, self.manager)
        await self.relay.start()
        self.manager.start_heartbeat()
        # Alerts to the configured channels (none configured: nothing runs).
        self.alerts = AlertDeliverer(self.redis, s)
        await self.alerts.start()
        self.revocations = RevocationWatcher(self.redis, s.redis_namespace, self.manager)
        await self.revocations.start()
        if self.watch_runs:
            try:
                self.watcher = RunWatcher.from_environment(
                    self.redis, s.redis_namespace, interval_seconds=s.run_watcher_interval_seconds
                )
                await self.watcher.start()
            except Exception as exc:  # the API stays up; /health reports Dagster's state
                logger.error("run watcher not started: %s", type(exc).__name__)
                self.watcher = None
        self.started = True

    async def stop(self) -> None:
        """Stop everything started by :meth:`start`."""
        if not self.started:
            return
        if self.watcher is not None:
            await self.watcher.stop()
        if self.alerts is not None:
            await self.alerts.stop()
        await self.revocations.stop()
        await self.manager.close_all()
        await self.relay.stop()
        await self.http.aclose()
        await self.redis.aclose()
        self.started = False
