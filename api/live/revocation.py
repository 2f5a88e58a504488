"""Closing the WebSockets of a revoked token (close 1008) within a second, in every process.

``tradeos token revoke`` bumps a Redis counter (:func:`~tradeos_pipelines.storage.tokens.
revocations_key`). Every sidecar process polls it every ``interval`` seconds; when it moves,
the ids of the stored tokens its open sockets were opened with are checked against the
database in one query, and the sockets of revoked ones are closed with 1008. A full check
also runs every ``full_check_seconds`` in case the announcement was lost (Redis down at
revocation time). The admin token (an environment variable) is not revocable this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import redis.asyncio as aioredis
from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError

from api.core.auth import TokenIdentity
from api.live.manager import CLOSE_POLICY_VIOLATION, ConnectionManager, Subscriber
from tradeos_pipelines.storage.tokens import revocations_key, revoked_among

logger = logging.getLogger(__name__)

REVOKED_REASON = "token revoked"


class RevocationWatcher:
    """Tracks which stored token each socket was opened with; closes those revoked."""

    def __init__(
        self,
        redis: aioredis.Redis,
        namespace: str,
        manager: ConnectionManager,
        *,
        interval: float = 0.25,
        full_check_seconds: float = 10.0,
    ) -> None:
        self.redis = redis
        self.key = revocations_key(namespace)
        self.manager = manager
        self.interval = interval
        self.full_check_seconds = full_check_seconds
        self._tokens: weakref.WeakKeyDictionary[Subscriber, int] = weakref.WeakKeyDictionary()
        self._task: asyncio.Task[None] | None = None

    def track(self, connection: Subscriber, identity: TokenIdentity) -> None:
        """Remember the stored token ``connection`` was opened with (not the admin token)."""
        if identity.token_id is not None:
            self._tokens[connection] = identity.token_id

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-revocations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _counter(self) -> bytes | None:
        try:
            return await self.redis.get(self.key)
        except RedisError:
            return None

    async def _run(self) -> None:
        seen = await self._counter()
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.full_check_seconds
        while True:
            await asyncio.sleep(self.interval)
            now = await self._counter()
            if now != seen or loop.time() >= next_full:
                seen = now
                next_full = loop.time() + self.full_check_seconds
                try:
                    await self.close_revoked()
                except Exception as exc:  # the database may be away; the next round retries
                    logger.warning("revocation check failed: %s", type(exc).__name__)

    async def close_revoked(self) -> int:
        """Close every tracked socket whose token is revoked; returns how many."""
        open_ones = {c: t for c, t in list(self._tokens.items()) if not c.closed}
        if not open_ones:
            return 0
        revoked = await run_in_threadpool(revoked_among, set(open_ones.values()))
        closed = 0
        for connection, token_id in open_ones.items():
            if token_id in revoked:
                # Not a slow client: leave the manager's drop statistics alone.
                connection.on_drop = None
                self.manager.unregister(connection)
                connection.drop(CLOSE_POLICY_VIOLATION, REVOKED_REASON)  # type: ignore[attr-defined]
                self._tokens.pop(connection, None)
                closed += 1
        if closed:
            logger.info("closed %d WebSocket(s) of revoked tokens", closed)
        return closed
