"""The HTTP plumbing every 1C protocol shares: one call = breaker → retries → request log.

A protocol client (``sources/http_service``, ``sources/odata``) builds its requests and reads
its answers; :class:`OneCTransport` carries each call: the circuit breaker admits it, attempts
are retried with exponential backoff and full jitter (``Retry-After`` honoured), every attempt
is recorded in the request log, and an answer outside the expected statuses goes to the
protocol's own ``raise_for_status`` (each protocol words 1C's errors its way). Answers worth
caching go through the Redis :class:`~.cache.ResponseCache`.

Retries are budgeted by time, not by count: a 1C cluster restart, a licence shortage
("нет свободной лицензии") or a web-server reload lasts 30–120 s, and a sync should ride it out
in the same run instead of failing after a few quick attempts. The budget of one call is the
time its attempts took plus the waits between them (so a test's recorded sleep counts the same
as a real one); no new attempt starts once it is spent. A 1C that stays down longer fails the
call, which counts once towards the circuit breaker.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NoReturn, Self
from urllib.parse import urlencode, urlsplit

import httpx
import redis.asyncio as aioredis

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import Scrubber
from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.sources.common.cache import ResponseCache
from tradeos_pipelines.sources.common.errors import OneCUnavailable, describe_body
from tradeos_pipelines.sources.common.ports import RequestLog, StatusPublisher

DEFAULT_RETRY_BUDGET_SECONDS = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one call: ``budget_seconds`` in all, full-jitter backoff.

    The n-th retry waits a uniform random time in ``[0, min(max_delay, base_delay·2ⁿ⁻¹)]``, or
    what ``Retry-After`` asks (capped at ``max_retry_after``). The budget is the attempts' time
    plus the waits; the last wait is cut to what is left of it, and a ``Retry-After`` beyond
    the budget ends the call at once (1C said it will not be ready in time). ``attempts``, when
    set, also caps the number of attempts (interactive calls and tests).
    """

    budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    base_delay: float = 0.5
    max_delay: float = 15.0
    max_retry_after: float = 60.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.budget_seconds < 0:
            raise ValueError(f"budget_seconds must be 0 or more, got {self.budget_seconds}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("base_delay, max_delay and max_retry_after must be 0 or more")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    @classmethod
    def interactive(cls) -> RetryPolicy:
        """For a person or a sensor tick waiting on the answer: a few quick attempts."""
        return cls(budget_seconds=10.0, max_delay=4.0, max_retry_after=4.0, attempts=4)


class _Retryable(Exception):
    """One attempt failed in a way worth another try (internal to the retry loop)."""

    def __init__(self, cause: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    """1C's status and body of one call."""

    status: int
    body: bytes


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def validate_base_url(base_url: str) -> str:
    """The publication URL without a trailing slash; a clear error for anything unusable."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if parts.username or parts.password:
        raise ValueError("base_url must not contain credentials; give them separately")
    return base_url.rstrip("/")


def basic_authorization(username: str, password: str | None) -> str:
    """``Authorization`` header value for Basic auth, UTF-8 (Cyrillic user names are the norm
    in 1C, and clients that encode Latin-1 fail)."""
    token = f"{username}:{password or ''}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


def credentials_scrubber(headers: dict[str, str]) -> Scrubber:
    """A scrubber of the credentials in ``headers`` (``X-API-Key`` or Basic ``Authorization``).

    The transport stores 1C's words itself (the breaker's ``last_error`` in Redis, shown by
    the sidecar); a 1C that echoes the credentials must not put them there.
    """
    api_key = headers.get("X-API-Key")
    authorization = headers.get("Authorization", "")
    basic = None
    if authorization[:6].lower() == "basic ":
        decoded = base64.b64decode(authorization[6:]).decode("utf-8", "replace")
        username, _, password = decoded.partition(":")
        basic = (username, password)
    return Scrubber([api_key], basic=basic)


def stored_options(config: IntegrationConfig) -> dict[str, Any]:
    """A protocol client's settings from a stored integration: time-outs, zone, cache, and
    calls that retry for the integration's ``retry_budget_seconds``."""
    return {
        "timeout": config.timeout_seconds,
        "integration_id": config.id,
        "tz": config.timezone,
        "cache_ttl_seconds": config.cache_ttl_seconds,
        "retry": RetryPolicy(budget_seconds=config.retry_budget_seconds),
    }


class OneCConnection:
    """What every protocol client is: an async context manager over its transport."""

    _transport: OneCTransport

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (the request log belongs to the caller)."""
        await self._transport.aclose()


class OneCTransport:
    """The calls of one client to one 1C infobase (see the module docstring).

    ``headers`` carry the protocol's authentication; ``raise_for_status`` turns an answer the
    caller did not accept into the protocol's error; ``redis`` switches on the shared breaker
    and the cache. ``sleep`` and ``jitter`` are injectable so tests check retry timing
    without waiting.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        raise_for_status: Callable[[str, str, Answer], NoReturn],
        timeout: float = 30.0,
        integration_id: str = "1c",
        redis: aioredis.Redis | None = None,
        request_log: RequestLog | None = None,
        publisher: StatusPublisher | None = None,
        run_id: str | None = None,
        cache_ttl_seconds: int = 60,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.base_url = validate_base_url(base_url)
        self.integration_id = integration_id
        self.run_id = run_id
        self.retry = retry or RetryPolicy()
        self._raise_for_status = raise_for_status
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"User-Agent": "tradeos-1c-sync", **headers},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=tls_context(),
            transport=transport,
        )
        self._request_log = request_log
        self._scrub = credentials_scrubber(headers)
        self._sleep = sleep
        self._jitter = jitter
        if breaker is None and redis is not None:
            breaker = CircuitBreaker(
                redis, integration_id, publisher=publisher, base_url=self.base_url
            )
        self._breaker = breaker
        self._cache = (
            ResponseCache(redis, integration_id, ttl_seconds=cache_ttl_seconds)
            if redis is not None
            else None
        )

    async def aclose(self) -> None:
        """Close the HTTP connections (the request log belongs to the caller)."""
        await self._http.aclose()

    async def cached_get(self, entity: str, path: str, params: dict[str, Any] | None) -> bytes:
        """A GET answered from the Redis cache when fresh, else from 1C (then cached)."""
        request = path + ("?" + urlencode(sorted(params.items())) if params else "")
        if self._cache is not None:
            cached = await self._cache.get(entity, request)
            if cached is not None:
                return cached
        answer = await self.call("GET", path, params=params)
        if self._cache is not None:
            await self._cache.put(entity, request, answer.body)
        return answer.body

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        accept: tuple[int, ...] = (200,),
        sent: asyncio.Event | None = None,
        tries: int | None = None,
        settled: tuple[int, ...] = (),
    ) -> Answer:
        """One call to 1C: the breaker admits it, attempts are retried and logged, and an
        answer outside ``accept`` is raised by the protocol's ``raise_for_status``.

        ``tries`` caps the attempts (1 for a write that is not idempotent: the caller finds
        out itself whether it happened); a status in ``settled`` is 1C's final
        word (e.g. a 500 refusing to post a document) and goes to ``raise_for_status``
        instead of being retried.
        """
        if self._breaker is not None:
            await self._breaker.admit()
        policy = self.retry
        attempt = 0
        spent = 0.0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                answer = await self._attempt(method, path, params, content, attempt, sent, settled)
                break
            except _Retryable as exc:
                spent += time.perf_counter() - started
                delay, stop = self._next_delay(
                    exc, attempt, policy.budget_seconds - spent, tries or policy.attempts
                )
                if stop is not None:
                    await self._give_up(method, path, exc, attempt, spent, stop)
                await self._sleep(delay)
                spent += delay
                if self._breaker is not None:
                    # Another process may have opened the circuit meanwhile: stop hammering.
                    await self._breaker.raise_if_open()
        if self._breaker is not None:
            await self._breaker.record_success()
        if answer.status not in accept:
            self._raise_for_status(method, path, answer)
        return answer

    def _next_delay(
        self, error: _Retryable, attempt: int, left: float, attempts: int | None
    ) -> tuple[float, str | None]:
        """The wait before the next attempt, or why there is none (budget or attempts spent)."""
        policy = self.retry
        if attempts is not None and attempt >= attempts:
            return 0.0, f"{attempt} attempt(s) allowed"
        if left <= 0:
            return 0.0, f"retry budget of {policy.budget_seconds:g} s spent"
        if error.retry_after is not None:
            delay = min(error.retry_after, policy.max_retry_after)
            if delay > left:
                return 0.0, (
                    f"1C asked to retry after {error.retry_after:g} s, beyond the "
                    f"{left:.1f} s left of the retry budget"
                )
            return delay, None
        ceiling = policy.base_delay * 2 ** (attempt - 1)
        return min(self._jitter() * min(policy.max_delay, ceiling), left), None

    async def _give_up(
        self, method: str, path: str, exc: _Retryable, attempts: int, spent: float, why: str
    ) -> NoReturn:
        if self._breaker is not None:
            await self._breaker.record_failure(self._scrub(exc.cause))
        raise OneCUnavailable(
            f"1C {self.integration_id!r} unavailable: {method} {path} failed {attempts} "
            f"time(s) in {spent:.1f} s ({why}); last: {exc.cause}",
            attempts=attempts,
            last_cause=exc.cause,
            integration_id=self.integration_id,
            status_code=exc.status,
        ) from None

    async def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        attempt: int,
        sent: asyncio.Event | None = None,
        settled: tuple[int, ...] = (),
    ) -> Answer:
        at = datetime.now(UTC)
        started = time.perf_counter()
        headers = {"Content-Type": "application/json; charset=utf-8"} if content else None
        try:
            response = await self._http.request(
                method,
                path.lstrip("/"),
                params=params,
                content=content,
                headers=headers,
                extensions={"trace": _on_sent(sent)} if sent is not None else None,
            )
        except httpx.TimeoutException as exc:
            cause = f"timeout ({type(exc).__name__}) after {time.perf_counter() - started:.1f} s"
            self._log(method, path, params, None, started, attempt, cause, at)
            raise _Retryable(cause) from None
        except httpx.TransportError as exc:
            cause = f"connection failed ({type(exc).__name__}: {exc})"
            self._log(method, path, params, None, started, attempt, cause, at)
            raise _Retryable(cause) from None
        except asyncio.CancelledError:
            # The caller stopped waiting (a sync failing while its next page was being read
            # ahead): the request did reach 1C, so the log keeps it like every other attempt.
            cause = f"cancelled after {time.perf_counter() - started:.1f} s: the caller stopped"
            self._log(method, path, params, None, started, attempt, cause, at)
            raise
        status, body = response.status_code, response.content
        if (status == 429 or status >= 500) and status not in settled:
            cause = f"HTTP {status}: {describe_body(body)}"
            self._log(method, path, params, status, started, attempt, cause, at)
            retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            raise _Retryable(cause, status, retry_after)
        error = None if status < 400 else f"HTTP {status}: {describe_body(body)}"
        self._log(method, path, params, status, started, attempt, error, at)
        return Answer(status, body)

    def _log(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        status: int | None,
        started: float,
        attempt: int,
        error: str | None,
        at: datetime,
    ) -> None:
        if self._request_log is None:
            return
        # The cursor is long and opaque; the rest of the query says what was asked.
        query = {k: v for k, v in (params or {}).items() if k != "cursor"}
        if params and "cursor" in params:
            query["cursor"] = "…"
        logged = path + ("?" + urlencode(query) if query else "")
        self._request_log.record(
            integration_id=self.integration_id,
            method=method,
            path=logged,
            status_code=status,
            duration_ms=(time.perf_counter() - started) * 1000,
            attempt=attempt,
            error=error,
            run_id=self.run_id,
            at=at,
        )


def _on_sent(sent: asyncio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` hook that sets ``sent`` once the request has been written."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        # "http11.receive_response_headers.started" (or http2.…): the request is out,
        # the answer is awaited.
        if event.endswith("receive_response_headers.started"):
            sent.set()

    return trace


async def until_sent(call: asyncio.Future[Any], sent: asyncio.Event) -> None:
    """Wait until ``call``'s request is on the wire, or ``call`` ended (failed, or a transport
    without traces, such as a test's ASGI transport, answered it)."""
    waiter = asyncio.ensure_future(sent.wait())
    try:
        await asyncio.wait((call, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once.

    Loading the CA bundle takes ~20 ms; httpx would do it for every client, and the sidecar
    and each Dagster run open a client per integration and call.
    """
    return httpx.create_ssl_context()
