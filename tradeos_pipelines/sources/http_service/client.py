"""``OneCClient``: the async HTTP client of the 1C service ``{base_url}/hs/api``.

One call to 1C goes through the shared :class:`~tradeos_pipelines.sources.common.transport.
OneCTransport` (circuit breaker → attempts with retries → every attempt in the request log);
this module builds the service's requests and maps its answers to typed results or to the
errors of :mod:`~tradeos_pipelines.sources.common.errors`. Pages are parsed by
:mod:`.parsing`, where the 1C quirks are handled.

Bulk reads (``iter_*``) fetch the next page while the current one is parsed and handed to the
caller, and are never cached. ``health()`` and ``fetch_page()`` lookups go through the Redis
cache when the client has Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import orjson
import redis.asyncio as aioredis

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.vocabulary import Entity
from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.sources.common.errors import (
    OneCAuthError,
    OneCError,
    OneCNotFound,
    OneCProtocolError,
    OneCValidationError,
    describe_body,
)
from tradeos_pipelines.sources.common.ports import RequestLog, StatusPublisher, StoredCatalogue
from tradeos_pipelines.sources.common.rows import (
    NomenclatureItem,
    OneCHealth,
    OneCOrder,
    OrderCreate,
    OrderCreated,
    Page,
    StockRow,
)
from tradeos_pipelines.sources.common.transport import (
    Answer,
    OneCConnection,
    OneCTransport,
    RetryPolicy,
    basic_authorization,
    stored_options,
    until_sent,
)
from tradeos_pipelines.sources.common.values import parse_guid, to_onec_local
from tradeos_pipelines.sources.http_service.entities import PARSERS
from tradeos_pipelines.sources.http_service.parsing import (
    Decoded,
    RowParser,
    decode_envelope,
    decode_json,
)

API = "/hs/api"
MAX_PAGE_SIZE = 1000


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # The contract sends money and quantities as JSON numbers.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot send {type(value).__name__} to 1C")


class OneCClient(OneCConnection):
    """Async client of one 1C infobase's HTTP service (an async context manager).

    Give ``api_key`` or ``username`` + ``password`` (UTF-8, Cyrillic user names work).
    ``redis`` switches on the shared circuit breaker and the cache; ``request_log`` records
    every attempt; ``publisher`` receives breaker events (default: the event bus on ``redis``).
    ``sleep`` and ``jitter`` (a uniform [0, 1) source) are injectable so tests check retry
    timing without waiting.
    """

    # 1C stamps every row with its modification time: the engine asks for changes since one.
    change_tracking = "timestamp"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        integration_id: str = "1c",
        tz: str = "Europe/Moscow",
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
        if (api_key is None) == (username is None):
            raise ValueError("give either api_key or username and password")
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r} (e.g. Europe/Moscow)") from None
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["X-API-Key"] = api_key
        else:
            headers["Authorization"] = basic_authorization(username or "", password)
        self._transport = OneCTransport(
            base_url,
            headers=headers,
            raise_for_status=self._raise_for_status,
            timeout=timeout,
            integration_id=integration_id,
            redis=redis,
            request_log=request_log,
            publisher=publisher,
            run_id=run_id,
            cache_ttl_seconds=cache_ttl_seconds,
            retry=retry,
            breaker=breaker,
            transport=transport,
            sleep=sleep,
            jitter=jitter,
        )
        self.integration_id = integration_id
        self.base_url = self._transport.base_url
        self.run_id = run_id
        self.retry = self._transport.retry
        self._call = self._transport.call
        self._cached_get = self._transport.cached_get

    @classmethod
    def from_config(
        cls,
        config: IntegrationConfig,
        *,
        redis: aioredis.Redis | None = None,
        request_log: RequestLog | None = None,
        publisher: StatusPublisher | None = None,
        run_id: str | None = None,
        **options: Any,
    ) -> OneCClient:
        """A client for a stored integration (credentials already decrypted); its calls retry
        for the integration's ``retry_budget_seconds`` unless ``retry`` says otherwise."""
        if config.auth_type == "basic":
            credentials: dict[str, Any] = {
                "username": config.username,
                "password": config.password,
            }
        else:
            credentials = {"api_key": config.api_key}
        return cls(
            config.base_url,
            **credentials,
            redis=redis,
            request_log=request_log,
            publisher=publisher,
            run_id=run_id,
            **{**stored_options(config), **options},
        )

    # ----- public calls ----------------------------------------------------------------------
    async def health(self) -> OneCHealth:
        """1C's ``/health`` (cached for ``settings.health_cache_ttl_seconds``)."""
        path = f"{API}/health"
        body = await self._cached_get("health", path, None)
        data = decode_json(body, "GET /health")
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise self._protocol(
                f"1C answered GET /health without a 'status': {describe_body(body)}", body
            )
        return OneCHealth(
            status=data["status"],
            configuration=data.get("configuration"),
            version=data.get("version"),
        )

    def iter_nomenclature(
        self, changed_since: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[Page[NomenclatureItem]]:
        """Catalogue items and folders changed after ``changed_since`` (all when ``None``)."""
        return self._iterate("nomenclature", changed_since, page_size, {})

    def iter_stock(
        self,
        changed_since: datetime | None = None,
        page_size: int = 1000,
        warehouse_id: str | None = None,
    ) -> AsyncIterator[Page[StockRow]]:
        """Free stock per product × warehouse; a full pass is a snapshot."""
        extra = {"warehouse_id": str(warehouse_id)} if warehouse_id else {}
        return self._iterate("stock", changed_since, page_size, extra)

    def iter_orders(
        self, changed_since: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[Page[OneCOrder]]:
        """Customer orders with their current 1C status."""
        return self._iterate("orders", changed_since, page_size, {})

    async def fetch_page(
        self,
        entity: Entity,
        *,
        limit: int = 100,
        cursor: str | None = None,
        changed_since: datetime | None = None,
        warehouse_id: str | None = None,
        use_cache: bool = True,
    ) -> Page[Any]:
        """One page, for lookups outside bulk syncs (cached per integration TTL)."""
        params = self._list_params(entity, changed_since, limit)
        if cursor:
            params["cursor"] = cursor
        if warehouse_id and entity == "stock":
            params["warehouse_id"] = str(warehouse_id)
        what = f"GET /{entity}"
        path = f"{API}/{entity}"
        if use_cache:
            body = await self._cached_get(entity, path, params)
        else:
            body = (await self._call("GET", path, params=params)).body
        parser = PARSERS[entity](self.zone)
        return parser.build(self._decode(parser, body, what))

    async def has_changes(
        self,
        entity: Entity,
        changed_since: datetime | None,
        catalogue: StoredCatalogue | None = None,
    ) -> bool:
        """Whether 1C has rows of ``entity`` changed after ``changed_since`` (a one-row read).

        ``catalogue`` is not needed: the service filters by modification time itself."""
        params = self._list_params(entity, changed_since, 1)
        answer = await self._call("GET", f"{API}/{entity}", params=params)
        envelope = self._envelope(answer.body, f"GET /{entity}")
        return bool(envelope["items"]) or (envelope["total"] or 0) > 0

    async def create_order(self, order: OrderCreate) -> OrderCreated:
        """Create a customer order in 1C; safe to retry (``external_id`` is the key).

        A ``409 duplicate`` means an earlier attempt created it: ``duplicate=True``.
        """
        payload = order.model_dump()
        payload["date"] = (
            to_onec_local(order.date, self.zone)
            if order.date.tzinfo is not None
            else order.date.isoformat(timespec="seconds")
        )
        content = orjson.dumps(payload, default=_json_default)
        answer = await self._call("POST", f"{API}/orders", content=content, accept=(201, 200, 409))
        data = decode_json(answer.body, "POST /orders")
        if not isinstance(data, dict):
            what = type(data).__name__
            raise self._protocol(f"1C answered POST /orders with {what}", answer.body)
        try:
            created = OrderCreated(
                id=parse_guid(data.get("id")),
                number=data.get("number"),
                status=data.get("status"),
                external_id=parse_guid(data.get("external_id")),
                duplicate=answer.status == 409,
            )
        except ValueError as exc:
            raise self._protocol(
                f"1C answered POST /orders ({answer.status}) without a usable order: {exc}",
                answer.body,
            ) from None
        if created.external_id != order.external_id:
            raise self._protocol(
                f"1C answered POST /orders for external_id {created.external_id}, "
                f"expected {order.external_id}",
                answer.body,
            )
        return created

    # ----- paging ------------------------------------------------------------------------
    def _list_params(
        self, entity: str, changed_since: datetime | None, limit: int
    ) -> dict[str, Any]:
        if entity not in PARSERS:
            raise ValueError(f"unknown entity {entity!r}; one of {', '.join(PARSERS)}")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}, got {limit}")
        params: dict[str, Any] = {"limit": limit}
        if changed_since is not None:
            params["changed_since"] = to_onec_local(changed_since, self.zone)
        return params

    async def _iterate(
        self, entity: str, changed_since: datetime | None, page_size: int, extra: dict[str, str]
    ) -> AsyncIterator[Page[Any]]:
        params = {**self._list_params(entity, changed_since, page_size), **extra}
        parser = PARSERS[entity](self.zone)
        path, what = f"{API}/{entity}", f"GET /{entity}"
        pending: asyncio.Task[Answer] | None = asyncio.ensure_future(
            self._call("GET", path, params=params)
        )
        previous_cursor: str | None = None
        try:
            while pending is not None:
                answer = await pending
                pending = None
                decoded = self._decode(parser, answer.body, what)
                cursor = decoded.next_cursor
                if cursor is not None:
                    if cursor == previous_cursor:
                        raise self._protocol(
                            f"1C answered {what} with the same next_cursor twice", answer.body
                        )
                    previous_cursor = cursor
                    # Ask for the next page now, so 1C prepares it while this one is built
                    # and used, and wait until the request is on the wire: httpx (through
                    # anyio) yields to the event loop several times before it writes, and a
                    # request still queued in the loop would leave only after the caller
                    # has finished with this page.
                    sent = asyncio.Event()
                    pending = asyncio.ensure_future(
                        self._call("GET", path, params={**params, "cursor": cursor}, sent=sent)
                    )
                    await until_sent(pending, sent)
                yield parser.build(decoded)
        finally:
            if pending is not None:
                # The caller stopped reading: whatever the abandoned page did does not matter,
                # but a read-ahead that already failed is awaited too, so asyncio does not
                # report its error as never retrieved.
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    def _decode(self, parser: RowParser, body: bytes, what: str) -> Decoded:
        """Decode a page body: the cursor is known before the rows become models."""
        try:
            return parser.decode(body, what)
        except OneCProtocolError as exc:
            exc.integration_id = self.integration_id
            raise

    def _envelope(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            return decode_envelope(body, what)
        except OneCProtocolError as exc:
            exc.integration_id = self.integration_id
            raise

    # ----- one call: breaker, retries, logging, status mapping --------------------------------
    def _raise_for_status(self, method: str, path: str, answer: Answer) -> NoReturn:
        status, body = answer.status, answer.body
        said = _onec_message(body)
        what = f"{method} {path.removeprefix(API)}"
        who = f"1C {self.integration_id!r}"
        if status in (401, 403):
            raise OneCAuthError(
                f"{who} refused the credentials ({status}) for {what}: {said}",
                integration_id=self.integration_id,
                status_code=status,
            )
        if status == 404:
            raise OneCNotFound(
                f"{who}: {what} not found (404); check base_url {self.base_url} and that the "
                f"HTTP service 'api' is published: {said}",
                integration_id=self.integration_id,
                status_code=status,
            )
        if status in (400, 409, 422):
            raise OneCValidationError(
                f"{who} refused {what} ({status}): {said}",
                onec_message=said,
                integration_id=self.integration_id,
                status_code=status,
            )
        raise OneCError(
            f"{who} answered {status} to {what}: {said}",
            integration_id=self.integration_id,
            status_code=status,
        )

    def _protocol(self, message: str, body: bytes) -> OneCProtocolError:
        return OneCProtocolError(
            message, excerpt=describe_body(body), integration_id=self.integration_id
        )


def _onec_message(body: bytes) -> str:
    """1C's own words: the ``message`` of a JSON error, else a short excerpt of the body."""
    try:
        data = orjson.loads(body[3:] if body.startswith(b"\xef\xbb\xbf") else body)
    except orjson.JSONDecodeError:
        return describe_body(body)
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
    return describe_body(body)
