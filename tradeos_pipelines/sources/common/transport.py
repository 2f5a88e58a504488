"""The HTTP plumbing every 1C protocol shares: one call = breaker → retries → request log.

A protocol client (``sources/http_service``, ``sources/odata``) builds its requests and reads
its answers; :class:`OneCTransport` carries each call: the circuit breaker admits it, attempts
are retried with exponential backoff and full jitter (``Retry-After`` honoured), every attempt
is recorded in the request log, and an answer outside the expected statuses goes to the
protocol's own ``raise_for_status`` (each protocol words 1C's errors its way). Answers worth
caching go through the Redis :class:`~.cache.ResponseCache`.
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
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import httpx
import redis.asyncio as aioredis
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.sources.common.cache import ResponseCache
from tradeos_pipelines.sources.common.errors import OneCUnavailable, describe_body
from tradeos_pipelines.sources.common.ports import RequestLog, StatusPublisher


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in total, full-jitter backoff capped at ``max_delay``.

    The n-th retry waits a uniform random time in ``[0, min(max_delay, base_delay·2ⁿ⁻¹)]``,
    or what ``Retry-After`` asks (up to ``max_retry_after``).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 120.0


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
        self._sleep = sleep
        self._jitter = jitter
        if breaker is None and redis is not None:
            breaker = CircuitBreaker(redis, integration_id, publisher=publisher)
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

        ``tries`` overrides the policy's count (1 for a write that is not idempotent: the
        caller finds out itself whether it happened); a status in ``settled`` is 1C's final
        word (e.g. a 500 refusing to post a document) and goes to ``raise_for_status``
        instead of being retried.
        """
        if self._breaker is not None:
            await self._breaker.admit()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(tries or self.retry.attempts),
                wait=self._wait,
                retry=retry_if_exception_type(_Retryable),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    answer = await self._attempt(
                        method, path, params, content, attempts, sent, settled
                    )
        except _Retryable as exc:
            if self._breaker is not None:
                await self._breaker.record_failure(exc.cause)
            raise OneCUnavailable(
                f"1C {self.integration_id!r} unavailable: {method} {path} failed {attempts} "
                f"time(s); last: {exc.cause}",
                attempts=attempts,
                last_cause=exc.cause,
                integration_id=self.integration_id,
                status_code=exc.status,
            ) from None
        if self._breaker is not None:
            await self._breaker.record_success()
        if answer.status not in accept:
            self._raise_for_status(method, path, answer)
        return answer

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.retry.max_retry_after)
        ceiling = self.retry.base_delay * 2 ** (state.attempt_number - 1)
        return self._jitter() * min(self.retry.max_delay, ceiling)

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
