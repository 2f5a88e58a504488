"""Resources of the 1C sync: where TradeOS data lives and where progress events go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from dagster import ConfigurableResource, EnvVar
from sqlalchemy.orm import Session

from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.storage.database import session_scope


class TradeOSResource(ConfigurableResource):
    """The TradeOS database and event bus, as the sync engine and the sensors need them.

    Both URLs come from the environment at run time (``dg.EnvVar``), never at import, so the
    code location loads without them and credentials never appear in the UI.
    """

    database_url: str
    redis_url: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with session_scope(self.database_url) as session:
            yield session

    @contextmanager
    def event_bus(self) -> Iterator[RedisEventBus]:
        """A publisher for ``sync.*``, ``alert`` and the other events the sidecar relays."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            yield RedisEventBus(client)
        finally:
            client.close()


def tradeos_resource_from_env() -> TradeOSResource:
    """The resource as deployed: URLs from ``TRADEOS_DATABASE_URL`` and ``TRADEOS_REDIS_URL``."""
    return TradeOSResource(
        database_url=EnvVar("TRADEOS_DATABASE_URL"), redis_url=EnvVar("TRADEOS_REDIS_URL")
    )
