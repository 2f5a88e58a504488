"""A circuit breaker per integration whose state lives in Redis.

Every Dagster run process and the sidecar talk to the same 1C; keeping the state in Redis
means they all stop hammering a sick 1C together and all see when it recovers::

    closed ──N consecutive failures──▶ open ──cool-down passed──▶ half_open (one probe)
      ▲                                  ▲                              │
      └────────── probe succeeds ────────┼──────────────────────────────┤
                                         └──────── probe fails ─────────┘

Only failures that mean "1C is unwell" count (connect errors, timeouts, 5xx, 429 after the
retries); a 401 or 422 proves 1C is up. Transitions run as Lua scripts, so two processes can
never both take the single half-open probe. Times are Unix milliseconds from an injectable
clock. Every state change publishes ``integration.status`` (channel ``integration_status``);
opening also publishes an ``alert`` (channel ``alerts``).

State is a hash at ``{namespace}:onec:breaker:{integration_id}``; no hash means closed with
no failures. Besides the state it keeps the first error of the current failure streak (what
made 1C look unwell in the first place) and the 1C address, so a refused call says what went
wrong and where, not only that the circuit is open.

Without Redis (stopped, unreachable) the breaker steps aside: calls go through unguarded (each
still limited by its retry budget) and a warning is logged, so a sync commits its data while
Redis is down instead of failing on the breaker's bookkeeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.event_bus import AsyncRedisEventBus
from tradeos_pipelines.sources.common.errors import CircuitOpenError
from tradeos_pipelines.sources.common.ports import StatusPublisher

log = logging.getLogger(__name__)

# KEYS[1] state hash; ARGV: now_ms, probe_lease_ms.
# Returns {verdict, previous_state, detail, failures, first_error}: verdict is pass | probe |
# reject; detail is the failure count for pass and the time a probe is allowed for reject.
_ADMIT = """
local s = redis.call('HMGET', KEYS[1], 'state', 'retry_at', 'probe_until', 'failures',
                     'first_error')
local state = s[1] or 'closed'
if state == 'closed' then return {'pass', 'closed', s[4] or '0'} end
local now = tonumber(ARGV[1])
if state == 'open' then
  if now < tonumber(s[2]) then return {'reject', 'open', s[2], s[4] or '0', s[5] or ''} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]))
  return {'probe', 'open', ''}
end
if s[3] and now < tonumber(s[3]) then
  return {'reject', 'half_open', s[3], s[4] or '0', s[5] or ''}
end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
return {'probe', 'half_open', ''}
"""

# KEYS[1]; returns the previous state ('' when it was closed with no failures).
_SUCCESS = """
local s = redis.call('HMGET', KEYS[1], 'state', 'failures')
if not s[1] and not s[2] then return '' end
redis.call('DEL', KEYS[1])
return s[1] or 'closed'
"""

# KEYS[1]; ARGV: now_ms, threshold, cooldown_ms, error, base_url.
# Returns {previous_state, new_state, failures, retry_at_ms, first_error}. The first failure of
# a streak is kept as first_error until a success ends the streak.
_FAILURE = """
local s = redis.call('HMGET', KEYS[1], 'state', 'failures', 'retry_at', 'first_error')
local state = s[1] or 'closed'
local failures = tonumber(s[2] or '0') + 1
local now = tonumber(ARGV[1])
local first = s[4] or ARGV[4]
redis.call('HSET', KEYS[1], 'first_error', first, 'base_url', ARGV[5])
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[2])) then
  local retry_at = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', failures, 'opened_at', now,
             'retry_at', retry_at, 'last_error', ARGV[4])
  redis.call('HDEL', KEYS[1], 'probe_until')
  return {state, 'open', failures, tostring(retry_at), first}
end
redis.call('HSET', KEYS[1], 'state', state, 'failures', failures, 'last_error', ARGV[4])
return {state, state, failures, s[3] or '', first}
"""


def breaker_key(integration_id: str, namespace: str | None = None) -> str:
    """Redis key of an integration's breaker state."""
    return f"{namespace or get_settings().redis_namespace}:onec:breaker:{integration_id}"


def _iso(ms: Any) -> str | None:
    if ms in (None, b"", ""):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def display_url(base_url: str | None) -> str | None:
    """The 1C address as messages name it: scheme, host, port and path only (a query string
    or fragment could carry a token; credentials in the URL are refused on input anyway)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, host + port, parts.path.rstrip("/"), "", ""))


def circuit_open_message(
    integration_id: str,
    *,
    first_error: str | None,
    base_url: str | None,
    failures: int | None,
    retry_at: datetime,
    what: str = "open",
) -> str:
    """Why a call is refused, leading with the cause: the first error of the failure streak
    that opened the circuit, where 1C is, and when a probe will be allowed."""
    where = (
        f"1C {display_url(base_url)} ({integration_id!r})"
        if base_url
        else (f"1C integration {integration_id!r}")
    )
    streak = f" after {failures} failures in a row" if failures else ""
    cause = f"{first_error} — " if first_error else ""
    return (
        f"{cause}{where}: circuit {what}{streak}; calls are refused until "
        f"{retry_at.isoformat(timespec='seconds')}"
    )


async def circuit_state(
    redis: aioredis.Redis, integration_id: str, *, namespace: str | None = None
) -> dict[str, Any]:
    """The breaker as the sidecar shows it: state, failures, opened_at, retry_at, last_error.

    ``retry_at`` (ISO 8601, UTC) is when an open circuit lets a probe through;
    ``first_error`` is the error that started the failure streak (what opened the circuit),
    ``base_url`` the 1C address those failures were at.
    """
    raw = await redis.hgetall(breaker_key(integration_id, namespace))
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "state": fields.get("state", "closed"),
        "failures": int(fields.get("failures", 0)),
        "opened_at": _iso(fields.get("opened_at")),
        "retry_at": _iso(fields.get("retry_at")) if fields.get("state") == "open" else None,
        "last_error": fields.get("last_error"),
        "first_error": fields.get("first_error"),
        "base_url": display_url(fields.get("base_url")),
    }


class CircuitBreaker:
    """One integration's breaker, shared through Redis by every process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        integration_id: str,
        *,
        failure_threshold: int | None = None,
        cooldown_seconds: float | None = None,
        probe_lease_seconds: float = 60.0,
        namespace: str | None = None,
        publisher: StatusPublisher | None = None,
        clock: Callable[[], float] = time.time,
        base_url: str | None = None,
    ) -> None:
        settings = get_settings()
        self.integration_id = integration_id
        self.base_url = display_url(base_url)
        self.failure_threshold = failure_threshold or settings.breaker_failure_threshold
        self.cooldown_ms = int((cooldown_seconds or settings.breaker_cooldown_seconds) * 1000)
        # A probe whose process died must not block the integration forever.
        self.probe_lease_ms = int(probe_lease_seconds * 1000)
        self.key = breaker_key(integration_id, namespace)
        self._redis = redis
        # Every process announces the transitions it makes, on the same Redis by default.
        self._publisher = publisher or AsyncRedisEventBus(redis)
        self._clock = clock
        self._admit = redis.register_script(_ADMIT)
        self._success = redis.register_script(_SUCCESS)
        self._failure = redis.register_script(_FAILURE)
        # True when the last admit saw a closed circuit with no failures: a success then has
        # nothing to reset, which saves a Redis round trip per page of a bulk read.
        self._clean = False
        self._warned = False

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def admit(self) -> bool:
        """Let a call through (``True`` when it is the half-open probe) or raise
        :class:`CircuitOpenError` saying when a probe will be allowed."""
        try:
            answer = await self._admit(keys=[self.key], args=[self._now_ms(), self.probe_lease_ms])
        except (RedisError, OSError) as exc:
            self._unguarded(exc)
            return False
        verdict, previous, detail, *streak = answer
        verdict, previous = _text(verdict), _text(previous)
        self._clean = verdict == "pass" and _text(detail) == "0"
        if verdict == "pass":
            return False
        if verdict == "probe":
            if previous == "open":
                await self._announce("open", "half_open", None, None)
            return True
        retry_at = datetime.fromtimestamp(int(detail) / 1000, UTC)
        failures, first_error = int(_text(streak[0])), _text(streak[1]) or None
        raise CircuitOpenError(
            circuit_open_message(
                self.integration_id,
                first_error=first_error,
                base_url=self.base_url,
                failures=failures,
                retry_at=retry_at,
                what="open" if previous == "open" else "half-open with a probe in flight",
            ),
            retry_at=retry_at,
            integration_id=self.integration_id,
            first_error=first_error,
        )

    async def raise_if_open(self) -> None:
        """Raise :class:`CircuitOpenError` when the circuit is open (a plain read: a call that
        is retrying checks between attempts whether other processes gave up on 1C)."""
        try:
            state, retry_at, failures, first = await self._redis.hmget(
                self.key, ["state", "retry_at", "failures", "first_error"]
            )
        except (RedisError, OSError) as exc:
            self._unguarded(exc)
            return
        if state is None or _text(state) != "open" or retry_at is None:
            return
        moment = datetime.fromtimestamp(int(_text(retry_at)) / 1000, UTC)
        first_error = _text(first) if first else None
        raise CircuitOpenError(
            circuit_open_message(
                self.integration_id,
                first_error=first_error,
                base_url=self.base_url,
                failures=int(_text(failures)) if failures else None,
                retry_at=moment,
                what="opened while retrying",
            ),
            retry_at=moment,
            integration_id=self.integration_id,
            first_error=first_error,
        )

    async def record_success(self) -> None:
        """1C answered: close the circuit and forget earlier failures."""
        if self._clean:
            return
        try:
            previous = _text(await self._success(keys=[self.key]))
        except (RedisError, OSError) as exc:
            self._unguarded(exc)
            return
        if previous in ("open", "half_open"):
            await self._announce(previous, "closed", 0, None)

    async def record_failure(self, error: str) -> None:
        """A call failed because 1C is unwell (after its retries)."""
        self._clean = False
        try:
            previous, state, failures, retry_at, first = await self._failure(
                keys=[self.key],
                args=[
                    self._now_ms(),
                    self.failure_threshold,
                    self.cooldown_ms,
                    error[:500],
                    self.base_url or "",
                ],
            )
        except (RedisError, OSError) as exc:
            self._unguarded(exc)
            return
        previous, state = _text(previous), _text(state)
        if previous != state:
            await self._announce(
                previous, state, int(failures), _iso(_text(retry_at)), error, _text(first)
            )

    def _unguarded(self, exc: BaseException) -> None:
        """Redis is unreachable: let calls through, and say so once per breaker."""
        if not self._warned:
            self._warned = True
            log.warning(
                "circuit breaker of %s unavailable (Redis: %s); calls to 1C go through unguarded",
                self.integration_id,
                type(exc).__name__,
            )

    async def _announce(
        self,
        previous: str,
        state: str,
        failures: int | None,
        retry_at: str | None,
        error: str | None = None,
        first_error: str | None = None,
    ) -> None:
        data = {
            "integration_id": self.integration_id,
            "state": state,
            "previous_state": previous,
            "failures": failures,
            "retry_at": retry_at,
            "error": error,
            "first_error": first_error,
            "base_url": self.base_url,
        }
        try:
            await self._publisher.publish("integration_status", "integration.status", data)
            if state == "open":
                where = f" ({self.base_url})" if self.base_url else ""
                message = (
                    f"1C «{self.integration_id}»{where} не отвечает: {failures} ошибок подряд, "
                    f"запросы приостановлены до {retry_at}. Первая ошибка: {first_error}"
                )
                await self._publisher.publish(
                    "alerts",
                    "alert",
                    {
                        "integration_id": self.integration_id,
                        "level": "error",
                        "kind": "circuit_open",
                        "message": message,
                        "retry_at": retry_at,
                        "failures": failures,
                        "first_error": first_error,
                        "base_url": self.base_url,
                    },
                )
        except Exception:  # an event lost must not fail the call to 1C
            log.warning("could not publish breaker state of %s", self.integration_id, exc_info=True)
