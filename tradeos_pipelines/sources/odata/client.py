"""``ODataClient``: a 1C infobase through the platform's standard OData interface (v3).

The same reading and writing surface as the HTTP service's ``OneCClient`` (``iter_nomenclature``,
``iter_stock``, ``iter_orders``, ``fetch_page``, ``has_changes``, ``health``,
``create_order``), yielding the same typed rows, so the engine does not know which protocol is
behind an integration. Every call goes through the shared
:class:`~tradeos_pipelines.sources.common.transport.OneCTransport` (breaker, retries, request
log, cache); this module builds OData requests, maps ``odata.error`` bodies and the web
server's HTML pages to the errors of :mod:`~tradeos_pipelines.sources.common.errors`, and
joins what 1C keeps in separate objects (goods, units, VAT rates, barcodes, prices; balances
and warehouses) into one row.

How it reads (docs/1c-odata.md): ``$top``/``$skip`` pages under ``$orderby=Ref_Key`` (1C never
sends ``odata.nextLink``), stopping on a short page; ``$select`` of only the fields used;
``allowedOnly=true`` so rows the user may not read are left out instead of failing the read.
``$metadata`` is read once per integration and checked before any read.

Catalog items have no modification time in OData: an incremental read of the catalogue
(given what TradeOS holds, a ``StoredCatalogue``) reads only ``Ref_Key,DataVersion`` of every
item and fetches full rows for the keys whose ``DataVersion`` differs from the stored one, plus
new keys and goods whose price was set since ``changed_since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn
from urllib.parse import quote, unquote
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import orjson
import redis.asyncio as aioredis

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import Entity
from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.sources.common.errors import (
    OneCAuthError,
    OneCError,
    OneCNotFound,
    OneCProtocolError,
    OneCUnavailable,
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
)
from tradeos_pipelines.sources.common.values import (
    ZERO_GUID,
    parse_decimal,
    parse_guid,
    to_onec_local,
)
from tradeos_pipelines.sources.odata import metadata as md
from tradeos_pipelines.sources.odata.metadata import Missing, Schema
from tradeos_pipelines.sources.odata.parsing import (
    GoodsParser,
    decode_json,
    decode_rows,
    names_of,
    odata_error,
    parse_orders,
    parse_stock,
    same_data_version,
)

SERVICE = "odata/standard.odata"
# A page's barcodes per good and prices per good.
Joined = tuple[dict[str, list[str]], dict[str, Decimal]]
log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Keys per `Ref_Key eq guid'…' or …` filter: percent-encoded, a Cyrillic field name and a
# key take ~130 bytes, so ten keep the query string under IIS's default limit of 2048.
KEYS_PER_FILTER = 10
# Statuses of orders are read for documents dated this far before ``changed_since``: an
# order's status changes after its date, and documents have no modification time in OData.
ORDER_STATUS_WINDOW = timedelta(days=30)
# Goods whose Ref_Key,DataVersion one change probe compares with TradeOS's (one call).
PROBE_WINDOW = 1000
PROBE_POSITION_TTL_SECONDS = 7 * 24 * 3600
# A POST of an order is sent once per attempt (1C has no idempotency key) and looked up in
# between; this many when the retry policy counts by time, not attempts.
ORDER_POST_ATTEMPTS = 4


class ODataClient(OneCConnection):
    """Async client of one 1C infobase's standard OData interface (an async context manager).

    ``base_url`` is the publication (``http://1c.local/trade``; the ``/odata/standard.odata``
    suffix may be given too). Basic auth only, UTF-8 (Cyrillic 1C users work).
    ``price_type_key``: the price type (``Catalog_ВидыЦен``) whose prices goods carry (none:
    no price); ``price_register``: ``"11.5"`` or ``"11.4"``; ``customer_key``: the
    counterparty of exported orders whose customer 1C does not know.
    """

    # The engine compares versions instead of asking for changes since a time.
    change_tracking = "version"

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str | None,
        timeout: float = 30.0,
        integration_id: str = "1c",
        tz: str = "Europe/Moscow",
        price_type_key: str | UUID | None = None,
        price_register: str = "11.5",
        customer_key: str | UUID | None = None,
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
        if not username:
            raise ValueError("the 1C OData interface needs a 1C user name (Basic auth)")
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r} (e.g. Europe/Moscow)") from None
        self.price_register = md.price_register(price_register)
        self.price_type_key = _guid_option(price_type_key, "price_type_key")
        self.customer_key = _guid_option(customer_key, "customer_key")
        base_url = base_url.rstrip("/").removesuffix("/" + SERVICE)
        self._transport = OneCTransport(
            base_url,
            headers={
                "Accept": "application/json",
                "Authorization": basic_authorization(username, password),
            },
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
        self._redis = redis
        self._schema: Schema | None = None
        self._customers: dict[str, str | None] = {}

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
    ) -> ODataClient:
        """A client for a stored integration (credentials already decrypted)."""
        if config.auth_type != "basic" or not config.username:
            raise ValueError(
                f"integration {config.id!r}: the 1C OData interface needs auth_type basic "
                "with a 1C user name and password"
            )
        settings = config.options
        return cls(
            config.base_url,
            username=config.username,
            password=config.password,
            price_type_key=settings.get("price_type_key"),
            price_register=str(settings.get("price_register") or "11.5"),
            customer_key=settings.get("customer_key"),
            redis=redis,
            request_log=request_log,
            publisher=publisher,
            run_id=run_id,
            **{**stored_options(config), **options},
        )

    # ----- $metadata --------------------------------------------------------------------------
    async def schema(self, *, fresh: bool = False) -> Schema:
        """The summary of ``$metadata``: from this process, Redis, or 1C (then kept)."""
        if self._schema is not None and not fresh:
            return self._schema
        if not fresh:
            self._schema = md.local_schema(self.integration_id, self.base_url)
            if self._schema is None and self._redis is not None:
                cached = await self._redis.get(self._schema_key())
                if cached:
                    self._schema = Schema.from_json(cached)
            if self._schema is not None:
                return self._schema
        answer = await self._call("GET", f"{SERVICE}/$metadata")
        try:
            schema = md.parse_metadata(answer.body)
        except ValueError as exc:
            raise self._protocol(f"1C answered GET $metadata with {exc}", answer.body) from None
        md.keep_local(self.integration_id, self.base_url, schema)
        if self._redis is not None:
            await self._redis.set(self._schema_key(), schema.to_json(), ex=md.METADATA_TTL_SECONDS)
        self._schema = schema
        return schema

    def _schema_key(self) -> str:
        # The URL is part of the key: an integration moved to another 1C re-reads $metadata.
        where = hashlib.blake2b(self.base_url.encode(), digest_size=8).hexdigest()
        namespace = get_settings().redis_namespace
        return f"{namespace}:onec:odata-metadata:{self.integration_id}:{where}"

    def needs(self, entity: str) -> list[md.Need]:
        """What reading or writing ``entity`` requires of the publication."""
        prices = self.price_register if self.price_type_key is not None else None
        return md.needs(entity, prices)

    async def missing(self, entity: str, *, fresh: bool = False) -> list[Missing]:
        """The objects and fields ``entity`` needs that ``$metadata`` lacks."""
        return (await self.schema(fresh=fresh)).missing(self.needs(entity))

    async def _require(self, entity: str) -> None:
        """Fail before any read, naming what the publication lacks."""
        missing = await self.missing(entity)
        if missing:
            raise OneCNotFound(
                f"1C {self.integration_id!r} cannot be read for {entity}: "
                + "; ".join(m.describe() for m in missing)
                + ". Publish them in 1C: Администрирование → Синхронизация данных → "
                "Настройка стандартного интерфейса OData (docs/1c-odata.md)",
                integration_id=self.integration_id,
                status_code=404,
            )

    # ----- reading ----------------------------------------------------------------------------
    async def health(self) -> OneCHealth:
        """The service document: 1C answers and the credentials are accepted."""
        answer = await self._call("GET", f"{SERVICE}/", params={"$format": "json"})
        data = decode_json(answer.body, "GET /")
        if not isinstance(data, dict):
            raise self._protocol("1C answered the service document with no object", answer.body)
        return OneCHealth(status="ok", configuration="1C:Enterprise standard OData", version=None)

    async def get_rows(
        self, entity_set: str, params: Mapping[str, Any], *, what: str | None = None
    ) -> list[dict[str, Any]]:
        """One GET of a collection (``value`` list); ``$format=json`` and ``allowedOnly``
        are added."""
        query = {"$format": "json", "allowedOnly": "true", **params}
        answer = await self._call("GET", _with_query(f"{SERVICE}/{entity_set}", query))
        return decode_rows(answer.body, what or f"GET {entity_set}")

    async def pages(
        self, entity_set: str, params: Mapping[str, Any], page_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every row of a collection in ``$top``/``$skip`` pages (1C sends no nextLink);
        stops on a short page. ``params`` must hold a stable ``$orderby``."""
        _check_size(page_size)

        def fetch(skip: int) -> asyncio.Future[list[dict[str, Any]]]:
            return asyncio.ensure_future(
                self.get_rows(entity_set, {**params, "$top": page_size, "$skip": skip})
            )

        skip = 0
        pending: asyncio.Future[list[dict[str, Any]]] | None = fetch(skip)
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if len(rows) == page_size:
                    # Ask for the next page now: 1C prepares it while this one is used.
                    skip += page_size
                    pending = fetch(skip)
                yield rows
        finally:
            if pending is not None:
                # The caller stopped reading: the read-ahead is cancelled and awaited, so a
                # failure of it is not reported as never retrieved.
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def count(self, entity_set: str, params: Mapping[str, Any] | None = None) -> int:
        """``<Set>/$count`` (with ``allowedOnly``)."""
        query = {"allowedOnly": "true", **(params or {})}
        answer = await self._call("GET", _with_query(f"{SERVICE}/{entity_set}/$count", query))
        text = answer.body.decode("utf-8-sig", "replace").strip()
        if not text.isdigit():
            raise self._protocol(f"1C answered {entity_set}/$count with {text!r}", answer.body)
        return int(text)

    async def _all(self, entity_set: str, fields: Iterable[str], orderby: str) -> list[Any]:
        rows: list[Any] = []
        params = {"$select": ",".join(fields), "$orderby": orderby}
        async for page in self.pages(entity_set, params, MAX_PAGE_SIZE):
            rows.extend(page)
        return rows

    async def _names(self, entity_set: str) -> dict[str, str]:
        return names_of(await self._all(entity_set, md.NAMED_FIELDS, "Ref_Key"))

    async def _barcodes(self, keys: list[str]) -> dict[str, list[str]]:
        """Barcodes of the goods ``keys``, in batches of :data:`KEYS_PER_FILTER`."""
        rows: list[Any] = []
        for batch in _batches(keys):
            rows += await self._barcode_rows(_any_key("Номенклатура_Key", batch))
        return _barcodes_of(rows)

    async def _barcode_rows(self, condition: str) -> list[Any]:
        params = {"$select": ",".join(md.BARCODE_FIELDS), "$filter": condition}
        return await self.get_rows(md.BARCODES, params)

    def _slice_last(self, condition: str) -> str:
        quoted = condition.replace("'", "''")
        return f"{self.price_register}_RecordType/SliceLast(Condition='{quoted}')"

    async def _prices(self, keys: list[str]) -> dict[str, Decimal]:
        """The latest price of the configured price type of the goods ``keys``."""
        if self.price_type_key is None:
            return {}
        rows: list[Any] = []
        for batch in _batches(keys):
            rows += await self._price_rows(_any_key("Номенклатура_Key", batch))
        return _prices_of(rows)

    async def _price_rows(self, condition: str) -> list[Any]:
        kind = f"ВидЦены_Key eq guid'{self.price_type_key}'"
        select = {"$select": "Номенклатура_Key,Цена"}
        return await self.get_rows(self._slice_last(f"{kind} and ({condition})"), select)

    async def _joined(self, rows: list[Any], *, by_range: bool = True) -> Joined:
        """The barcodes and prices of one page of goods read in ``Ref_Key`` order.

        ``by_range``: asked by the page's key range (``ge`` its first key, ``le`` its last),
        two calls a page whatever its size, which holds exactly the page's goods when 1C
        compares references in ``$filter`` the way it orders them in ``$orderby`` (see
        :meth:`_ranges_follow_order`). Otherwise by the page's keys, :data:`KEYS_PER_FILTER`
        to a call. Only a page's worth is ever held (reading the registers whole took 915 MB
        at a million goods).
        """
        keys = [str(r["Ref_Key"]) for r in rows if isinstance(r, dict) and r.get("Ref_Key")]
        if not keys:
            return {}, {}
        if not by_range:
            return await self._barcodes(keys), await self._prices(keys)
        condition = f"Номенклатура_Key ge guid'{keys[0]}' and Номенклатура_Key le guid'{keys[-1]}'"
        if self.price_type_key is None:
            return _barcodes_of(await self._barcode_rows(condition)), {}
        barcodes, prices = await asyncio.gather(
            self._barcode_rows(condition), self._price_rows(condition)
        )
        return _barcodes_of(barcodes), _prices_of(prices)

    async def _ranges_follow_order(self, rows: list[Any]) -> bool:
        """Whether this 1C's ``$filter`` range on ``Ref_Key`` holds exactly the goods its
        ``$orderby=Ref_Key`` put between the first page's first and last key.

        Reading registers by key range rests on that. 1C compares and orders references by
        the same stored value, so it should hold on every base; one request per full read
        checks it on this one, and a base where it does not hold is read by keys instead
        (slower, never a good joined with another page's barcodes or none at all).
        """
        keys = [str(r["Ref_Key"]) for r in rows if isinstance(r, dict) and r.get("Ref_Key")]
        if len(keys) < 2:
            return True
        found = await self.get_rows(
            md.GOODS,
            {
                "$select": "Ref_Key",
                "$filter": f"Ref_Key ge guid'{keys[0]}' and Ref_Key le guid'{keys[-1]}'",
                "$orderby": "Ref_Key",
                "$top": len(keys) + 1,
            },
        )
        listed = [str(r.get("Ref_Key")) for r in found if isinstance(r, dict)]
        if listed == keys:
            return True
        log.warning(
            "1C %r: a Ref_Key range of %d goods in $orderby order answered %d goods, not the "
            "same ones; barcodes and prices are read by key, %d keys to a call (slower)",
            self.integration_id,
            len(keys),
            len(listed),
            KEYS_PER_FILTER,
        )
        return False

    async def _repriced(self, since: datetime) -> set[str]:
        """Goods whose price of the configured type was set at or after ``since``."""
        if self.price_type_key is None:
            return set()
        moment = to_onec_local(since, self.zone).split(".")[0]
        rows = await self._all_filtered(
            f"{self.price_register}_RecordType",
            f"ВидЦены_Key eq guid'{self.price_type_key}' and Period ge datetime'{moment}'",
            "Номенклатура_Key",
        )
        return {str(r.get("Номенклатура_Key")) for r in rows}

    async def _all_filtered(self, entity_set: str, filter_: str, select: str) -> list[Any]:
        rows: list[Any] = []
        params = {"$select": select, "$filter": filter_, "$orderby": select.split(",")[0]}
        async for page in self.pages(entity_set, params, MAX_PAGE_SIZE):
            rows.extend(page)
        return rows

    def iter_nomenclature(
        self,
        changed_since: datetime | None = None,
        page_size: int = 1000,
        catalogue: StoredCatalogue | None = None,
    ) -> AsyncIterator[Page[NomenclatureItem]]:
        """Goods and folders: all of them, or (given what TradeOS holds, ``catalogue``) only
        those whose ``DataVersion`` changed, new ones, and goods repriced since
        ``changed_since``."""
        _check_size(page_size)
        if catalogue is None:
            return self._all_goods(page_size)
        return self._changed_goods(changed_since, page_size, catalogue)

    async def _goods_parser(self, keys: list[str]) -> GoodsParser:
        units = await self._names(md.UNITS)
        vat_rates = await self._names(md.VAT_RATES)
        return GoodsParser(units, vat_rates, await self._barcodes(keys), await self._prices(keys))

    async def _all_goods(self, page_size: int) -> AsyncIterator[Page[NomenclatureItem]]:
        await self._require("nomenclature")
        total = await self.count(md.GOODS)
        units, vat_rates = await self._names(md.UNITS), await self._names(md.VAT_RATES)
        params = {"$select": ",".join(md.GOODS_FIELDS), "$orderby": "Ref_Key"}
        # A page's barcodes and prices are asked for as soon as the page arrives, and the
        # page is joined one page later: 1C works on the next pages while this one is joined
        # and staged (pages() itself reads the next page of goods ahead).
        waiting: deque[tuple[list[Any], asyncio.Future[Joined]]] = deque()
        by_range: bool | None = None
        try:
            async for rows in self.pages(md.GOODS, params, page_size):
                if by_range is None:
                    by_range = await self._ranges_follow_order(rows)
                joined = asyncio.ensure_future(self._joined(rows, by_range=by_range))
                waiting.append((rows, joined))
                if len(waiting) > 1:
                    yield await self._join_page(waiting.popleft(), units, vat_rates, total)
            while waiting:
                yield await self._join_page(waiting.popleft(), units, vat_rates, total)
        finally:
            for _, joined in waiting:
                joined.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await joined

    @staticmethod
    async def _join_page(
        pending: tuple[list[Any], asyncio.Future[Joined]],
        units: Mapping[str, str],
        vat_rates: Mapping[str, str],
        total: int,
    ) -> Page[NomenclatureItem]:
        rows, joined = pending
        barcodes, prices = await joined
        return GoodsParser(units, vat_rates, barcodes, prices).page(rows, total)

    async def _changed_goods(
        self,
        changed_since: datetime | None,
        page_size: int,
        catalogue: StoredCatalogue,
    ) -> AsyncIterator[Page[NomenclatureItem]]:
        """The ``Ref_Key,DataVersion`` pass, each page of it compared with what TradeOS holds
        of those keys only, and the full rows of what differs fetched as it is found: memory
        follows the page and the changes, never the catalogue (a million stored versions in a
        dict took more than the 200 MB a whole sync may use)."""
        await self._require("nomenclature")
        total = await self.count(md.GOODS)
        names = await self._names(md.UNITS), await self._names(md.VAT_RATES)
        fetched: set[str] = set()
        wanted: list[str] = []
        async for differing in self._differing_keys(catalogue):
            wanted += differing
            while len(wanted) >= page_size:
                chunk, wanted = wanted[:page_size], wanted[page_size:]
                yield await self._goods_of(chunk, total, *names)
                fetched.update(chunk)
        if changed_since is not None:
            # A good repriced but gone from 1C since is not found by key: nothing comes back.
            repriced = await self._repriced(changed_since)
            wanted += sorted(repriced - fetched - set(wanted))
        for start in range(0, len(wanted), page_size):
            yield await self._goods_of(wanted[start : start + page_size], total, *names)
        if not wanted and not fetched:
            yield Page(items=[], total=total)

    async def _differing_keys(self, catalogue: StoredCatalogue) -> AsyncIterator[list[str]]:
        """Per page of the ``Ref_Key,DataVersion`` pass: the keys new to TradeOS or whose
        ``DataVersion`` differs from every version it holds of them.

        A page's stored versions are looked up in a thread while the next page is read, so
        the lookup (about 10 ms a page of 1,000 keys) overlaps 1C's work instead of adding to it.
        """
        params = {"$select": "Ref_Key,DataVersion", "$orderby": "Ref_Key"}
        looking: deque[tuple[list[Any], asyncio.Future[Mapping[str, list[str]]]]] = deque()
        try:
            async for rows in self.pages(md.GOODS, params, MAX_PAGE_SIZE):
                keys = [str(row.get("Ref_Key")) for row in rows]
                lookup = asyncio.ensure_future(asyncio.to_thread(catalogue.versions, keys))
                looking.append((rows, lookup))
                if len(looking) > 1:
                    page, known = looking.popleft()
                    yield _differing(page, await known)
            while looking:
                page, known = looking.popleft()
                yield _differing(page, await known)
        finally:
            for _, known in looking:
                # A lookup already running in its thread finishes; only its answer is dropped.
                known.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await known

    async def _goods_of(
        self,
        keys: list[str],
        total: int,
        units: Mapping[str, str],
        vat_rates: Mapping[str, str],
    ) -> Page[NomenclatureItem]:
        """Full rows of the goods ``keys``, joined with their barcodes and prices."""
        parser = GoodsParser(units, vat_rates, await self._barcodes(keys), await self._prices(keys))
        select = ",".join(md.GOODS_FIELDS)
        rows: list[Any] = []
        for batch in _batches(keys):
            rows += await self.get_rows(
                md.GOODS, {"$select": select, "$filter": _any_key("Ref_Key", batch)}
            )
        return parser.page(rows, total)

    def iter_stock(
        self,
        changed_since: datetime | None = None,
        page_size: int = 1000,
        warehouse_id: str | None = None,
    ) -> AsyncIterator[Page[StockRow]]:
        """Free stock per good × warehouse: always a snapshot (a balance has no change time).

        ``Balance`` is computed by 1C on every call (12–19 s on a real base): it is asked
        once per warehouse, not once per page.
        """
        _check_size(page_size)
        return self._stock(page_size, warehouse_id)

    async def _stock(
        self, page_size: int, warehouse_id: str | None
    ) -> AsyncIterator[Page[StockRow]]:
        await self._require("stock")
        warehouses = await self._names(md.WAREHOUSES)
        keys = [str(UUID(str(warehouse_id)))] if warehouse_id else sorted(warehouses)
        select = ",".join(md.BALANCE_FIELDS)
        for key in keys:
            call = (
                f"{md.STOCK}/Balance(Dimensions='Номенклатура,Склад',"
                f"Condition='Склад_Key eq guid''{key}''')"
            )
            rows = await self.get_rows(call, {"$select": select}, what=f"GET {md.STOCK}/Balance")
            for start in range(0, len(rows), page_size):
                yield parse_stock(rows[start : start + page_size], warehouses)

    def iter_orders(
        self, changed_since: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[Page[OneCOrder]]:
        """Posted customer orders TradeOS sent (``НомерПоДаннымКлиента`` set) with their 1C
        status; with ``changed_since``, those dated up to :data:`ORDER_STATUS_WINDOW` before."""
        _check_size(page_size)
        return self._orders(changed_since, page_size)

    def _orders_filter(self, changed_since: datetime | None) -> str:
        condition = "Posted eq true and НомерПоДаннымКлиента ne ''"
        if changed_since is not None:
            start = to_onec_local(changed_since - ORDER_STATUS_WINDOW, self.zone).split(".")[0]
            condition += f" and Date ge datetime'{start}'"
        return condition

    async def _orders(
        self, changed_since: datetime | None, page_size: int
    ) -> AsyncIterator[Page[OneCOrder]]:
        await self._require("orders")
        params = {
            "$select": ",".join(md.ORDER_FIELDS),
            "$filter": self._orders_filter(changed_since),
            "$orderby": "Ref_Key",
        }
        async for rows in self.pages(md.ORDERS, params, page_size):
            yield parse_orders(rows, self.zone)

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
        """One page for lookups outside bulk syncs; ``cursor`` is the ``$skip`` of the next
        page (``next_cursor`` is set when the page was full). Not cached: an OData page
        joins several answers."""
        _check_size(limit)
        skip = int(cursor) if cursor and cursor.isdigit() else 0
        window = {"$top": limit, "$skip": skip}
        if entity == "nomenclature":
            await self._require("nomenclature")
            params = {"$select": ",".join(md.GOODS_FIELDS), "$orderby": "Ref_Key", **window}
            rows = await self.get_rows(md.GOODS, params)
            keys = [str(r.get("Ref_Key")) for r in rows if isinstance(r, dict)]
            page: Page[Any] = (await self._goods_parser(keys)).page(rows)
        elif entity == "orders":
            await self._require("orders")
            params = {
                "$select": ",".join(md.ORDER_FIELDS),
                "$filter": self._orders_filter(changed_since),
                "$orderby": "Ref_Key",
                **window,
            }
            rows = await self.get_rows(md.ORDERS, params)
            page = parse_orders(rows, self.zone)
        elif entity == "stock":
            items: list[StockRow] = []
            async for part in self._stock(MAX_PAGE_SIZE, warehouse_id):
                items += part.items
            rows = items[skip : skip + limit]
            page = Page(items=rows)
        else:
            raise ValueError(f"unknown entity {entity!r}; one of nomenclature, stock, orders")
        if len(rows) == limit:
            page.next_cursor = str(skip + limit)
        return page

    async def has_changes(
        self,
        entity: Entity,
        changed_since: datetime | None,
        catalogue: StoredCatalogue | None = None,
    ) -> bool:
        """A cheap probe of whether ``entity`` may have changed after ``changed_since``.

        Orders: a posted TradeOS order dated after ``changed_since`` (a status change of an
        older one has no cheap trace: the orders schedule reads those). Nomenclature: a price
        set since then, or (given what TradeOS holds, ``catalogue``) goods added or edited,
        see :meth:`_goods_changed`. Stock: never (a balance has no change time, and
        ``Balance`` is slow on a real base: the stock schedule reads it).
        """
        if entity == "stock":
            return False
        if changed_since is None:
            return True
        moment = to_onec_local(changed_since, self.zone).split(".")[0]
        if entity == "orders":
            condition = f"{self._orders_filter(None)} and Date ge datetime'{moment}'"
            rows = await self.get_rows(
                md.ORDERS, {"$select": "Ref_Key", "$filter": condition, "$top": 1}
            )
            return bool(rows)
        if entity == "nomenclature":
            if self.price_type_key is None:
                return catalogue is not None and await self._goods_changed(catalogue)
            rows = await self.get_rows(
                f"{self.price_register}_RecordType",
                {
                    "$select": "Номенклатура_Key",
                    "$filter": f"ВидЦены_Key eq guid'{self.price_type_key}' "
                    f"and Period ge datetime'{moment}'",
                    "$top": 1,
                },
            )
            return bool(rows) or (catalogue is not None and await self._goods_changed(catalogue))
        raise ValueError(f"unknown entity {entity!r}; one of nomenclature, stock, orders")

    async def _goods_changed(self, catalogue: StoredCatalogue) -> bool:
        """Goods added or edited in 1C, found without reading the whole catalogue.

        An edit changes only the item's ``DataVersion`` (no time to filter on), so each call
        compares one window of :data:`PROBE_WINDOW` keys' ``Ref_Key,DataVersion`` with what
        TradeOS holds, the next call the next window (the position is kept in Redis): an edit
        is seen within ``goods / PROBE_WINDOW`` probes. An added good is seen at once: 1C
        then has more goods than TradeOS knows (``$count``; a good deleted in 1C only lowers
        it, so the comparison never keeps asking for runs that cannot settle it).
        """
        if await self.count(md.GOODS) > catalogue.count():
            return True
        position = self._probe_key()
        skip = int(await self._redis.get(position) or 0) if self._redis is not None else 0
        rows = await self.get_rows(
            md.GOODS,
            {
                "$select": "Ref_Key,DataVersion",
                "$orderby": "Ref_Key",
                "$top": PROBE_WINDOW,
                "$skip": skip,
            },
        )
        if self._redis is not None:
            # Past the end, the next probe starts again from the first key.
            following = skip + len(rows) if len(rows) == PROBE_WINDOW else 0
            await self._redis.set(position, following, ex=PROBE_POSITION_TTL_SECONDS)
        if not rows and skip:
            return False
        known = catalogue.versions([str(row.get("Ref_Key")) for row in rows])
        return bool(_differing(rows, known))

    def _probe_key(self) -> str:
        where = hashlib.blake2b(self.base_url.encode(), digest_size=8).hexdigest()
        namespace = get_settings().redis_namespace
        return f"{namespace}:onec:odata-probe:{self.integration_id}:{where}"

    # ----- orders out -------------------------------------------------------------------------
    async def find_order(self, external_id: UUID) -> dict[str, Any] | None:
        """The customer order TradeOS created for ``external_id`` (its id is written into
        ``НомерПоДаннымКлиента``), or ``None``."""
        rows = await self.get_rows(
            md.ORDERS,
            {
                "$select": "Ref_Key,Number,Статус,Posted,DeletionMark",
                "$filter": f"НомерПоДаннымКлиента eq '{external_id}'",
            },
        )
        live = [r for r in rows if not r.get("DeletionMark")]
        return (live or rows or [None])[0]

    async def _order_by_key(self, key: UUID) -> dict[str, Any]:
        answer = await self._call(
            "GET",
            _with_query(
                f"{SERVICE}/{md.ORDERS}(guid'{key}')",
                {"$format": "json", "$select": "Ref_Key,Number,Статус,Posted,DeletionMark"},
            ),
        )
        data = decode_json(answer.body, f"GET {md.ORDERS}(guid'{key}')")
        if not isinstance(data, dict):
            raise self._protocol(f"1C answered GET {md.ORDERS} by key with no object", answer.body)
        return data

    async def _customer(self, order: OrderCreate) -> str:
        """The counterparty: by ИНН, else by name, else the integration's ``customer_key``."""
        customer = order.customer
        lookup = f"ИНН eq '{_quote(customer.inn)}'" if customer.inn else None
        if lookup is None:
            lookup = f"Description eq '{_quote(customer.name)}'"
        if lookup not in self._customers:
            rows = await self.get_rows(
                md.CUSTOMERS,
                {"$select": "Ref_Key,DeletionMark", "$filter": lookup, "$top": 2},
            )
            live = [r for r in rows if not r.get("DeletionMark")]
            self._customers[lookup] = str(live[0]["Ref_Key"]) if live else None
        found = self._customers[lookup] or (
            str(self.customer_key) if self.customer_key is not None else None
        )
        if found is None:
            who = f"ИНН {customer.inn}" if customer.inn else f"name {customer.name!r}"
            raise OneCValidationError(
                f"1C {self.integration_id!r} has no counterparty with {who}",
                onec_message=f"no counterparty (Catalog_Контрагенты) with {who} in 1C: create "
                "it in 1C, or set the integration's options.customer_key to a default one",
                integration_id=self.integration_id,
            )
        return found

    def _order_body(self, order: OrderCreate, customer: str) -> bytes:
        date = (
            to_onec_local(order.date, self.zone).split(".")[0]
            if order.date.tzinfo is not None
            else order.date.isoformat(timespec="seconds")
        )
        contact = ", ".join(
            part
            for part in (order.customer.name, order.customer.phone, order.customer.email)
            if part
        )
        comment = f"TradeOS {order.external_id}: {contact}"
        if order.comment:
            comment += f". {order.comment}"
        lines = [
            {
                "LineNumber": number,
                "Номенклатура_Key": str(line.product_id),
                "Количество": _number(line.quantity),
                "Цена": _number(line.price),
                "Сумма": _number(line.quantity * line.price),
            }
            for number, line in enumerate(order.items, start=1)
        ]
        return orjson.dumps(
            {
                # The TradeOS id as the document's key: a second POST of the same order is
                # refused by 1C with code 15 even while the first is still being written.
                "Ref_Key": str(order.external_id),
                "Date": date,
                "НомерПоДаннымКлиента": str(order.external_id),
                "Комментарий": comment,
                "Контрагент_Key": customer,
                "Склад_Key": str(order.warehouse_id) if order.warehouse_id else ZERO_GUID,
                "Товары": lines,
            }
        )

    async def create_order(self, order: OrderCreate) -> OrderCreated:
        """Create the customer order with its ``Товары`` in one POST, then post it.

        1C has no idempotency key: the order is looked up by ``НомерПоДаннымКлиента`` (the
        TradeOS id) first, and again after a POST whose outcome is unknown, so a retry never
        makes a second document (``duplicate=True`` when it existed). A posting 1C refuses
        raises :class:`OneCValidationError` with 1C's message and the created document's
        number; the document stays in 1C unposted, and a later export posts it.
        """
        await self._require("order_export")
        found = await self.find_order(order.external_id)
        duplicate = found is not None
        if found is None:
            content = self._order_body(order, await self._customer(order))
            attempts = self.retry.attempts or ORDER_POST_ATTEMPTS
            for attempt in range(1, attempts + 1):
                try:
                    answer = await self._call(
                        "POST",
                        f"{SERVICE}/{md.ORDERS}",
                        params={"$format": "json"},
                        content=content,
                        accept=(200, 201),
                        tries=1,
                    )
                except KeyExists:
                    found = await self._order_by_key(order.external_id)
                    duplicate = True
                    break
                except OneCUnavailable:
                    # Created or not? Ask 1C before sending it again.
                    found = await self.find_order(order.external_id)
                    if found is not None:
                        duplicate = True
                        break
                    if attempt == attempts:
                        raise
                    continue
                found = decode_json(answer.body, f"POST {md.ORDERS}")
                break
        assert found is not None
        if not isinstance(found, dict) or parse_guid(found.get("Ref_Key")) is None:
            raise self._protocol(
                f"1C answered POST {md.ORDERS} without a Ref_Key", orjson.dumps(found)
            )
        key = str(found["Ref_Key"])
        number = str(found.get("Number") or "").strip()
        if not found.get("Posted"):
            await self._post(key, number)
        return OrderCreated(
            id=UUID(key),
            number=number,
            status=str(found.get("Статус") or ""),
            external_id=order.external_id,
            duplicate=duplicate,
        )

    async def _post(self, key: str, number: str) -> None:
        try:
            await self._call(
                "POST",
                f"{SERVICE}/{md.ORDERS}(guid'{key}')/Post",
                params={"PostingModeOperational": "false", "$format": "json"},
                accept=(200, 204),
                settled=(500,),
            )
        except OneCValidationError as exc:
            raise OrderNotPosted(
                f"1C {self.integration_id!r} created order {number} ({key}) but did not post "
                f"it: {exc.message}",
                onec_message=f"1C created order {number} but refused to post it: {exc.message}",
                onec_id=key,
                number=number,
                integration_id=self.integration_id,
                status_code=exc.status_code,
            ) from None

    # ----- errors -----------------------------------------------------------------------------
    def _raise_for_status(self, method: str, path: str, answer: Answer) -> NoReturn:
        status, body = answer.status, answer.body
        code, said = odata_error(body)
        # The query (logged with the attempt) is left out: 1C's message says what was wrong.
        resource = unquote(path.split("?", 1)[0]).removeprefix(SERVICE).lstrip("/")
        target = resource.split("(", 1)[0].split("/", 1)[0] or "the service document"
        what = f"{method} {resource or '/'}"
        who = f"1C {self.integration_id!r}"
        common: dict[str, Any] = {"integration_id": self.integration_id, "status_code": status}
        if status == 401 or (status == 403 and code is None):
            raise OneCAuthError(
                f"{who} refused the user name or password ({status}) for {what}: {said}",
                **common,
            )
        if code == "20" or status == 403:
            raise OneCAuthError(
                f"{who}: the 1C user may not read {target} (code {code}): {said}. Give the "
                "user a role with the right to read it",
                **common,
            )
        if code in ("6", "8") or (status == 404 and code is None):
            raise OneCNotFound(
                f"{who}: {target} not found ({status}, code {code}); check base_url "
                f"{self.base_url} and that {target} is published in the standard OData "
                f"interface: {said}",
                **common,
            )
        if code == "15":
            raise KeyExists(
                f"{who} refused {what}: an object with this key exists (code 15): {said}",
                onec_message=said,
                **common,
            )
        if code == "9":
            raise OneCNotFound(f"{who}: {what}: no such object (404, code 9): {said}", **common)
        if status in (400, 409, 422, 500) and code is not None:
            raise OneCValidationError(
                f"{who} refused {what} ({status}, code {code}): {said}",
                onec_message=said,
                **common,
            )
        raise OneCError(f"{who} answered {status} to {what}: {said}", **common)

    def _protocol(self, message: str, body: bytes) -> OneCProtocolError:
        return OneCProtocolError(
            message, excerpt=describe_body(body), integration_id=self.integration_id
        )


class KeyExists(OneCValidationError):
    """1C's code 15: an object with the key given in a POST exists already."""


class OrderNotPosted(OneCValidationError):
    """1C created the order but refused to post it; ``onec_id`` and ``number`` say which."""

    def __init__(self, message: str, *, onec_id: str, number: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.onec_id = onec_id
        self.number = number


def _with_query(path: str, params: Mapping[str, Any]) -> str:
    """``path?query`` with spaces as ``%20``: 1C reads ``+`` as a plus sign, not a space
    (httpx's own encoding of ``params`` writes spaces as ``+``)."""
    query = "&".join(
        f"{quote(name, safe='$')}={quote(str(value), safe=_SAFE)}" for name, value in params.items()
    )
    return f"{path}?{query}" if query else path


_SAFE = "$,'()=:/"


def _check_size(size: int) -> None:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}, got {size}")


def _guid_option(value: str | UUID | None, name: str) -> UUID | None:
    if value is None or value == "":
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise ValueError(f"{name} must be a GUID, got {value!r}") from None


def _barcodes_of(rows: list[Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in rows:
        code = row.get("Штрихкод")
        if code:
            found.setdefault(str(row.get("Номенклатура_Key")), []).append(str(code))
    for codes in found.values():
        codes.sort()
    return found


def _prices_of(rows: list[Any]) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for row in rows:
        try:
            price = parse_decimal(row.get("Цена"))
        except ValueError:
            continue  # the good's row says nothing wrong; its price is left out
        if price is not None:
            prices.setdefault(str(row.get("Номенклатура_Key")), price)
    return prices


def _differing(rows: list[Any], known: Mapping[str, list[str]]) -> list[str]:
    """Keys of ``rows`` (``Ref_Key,DataVersion``) whose ``DataVersion`` no known version of
    theirs was made from."""
    differing = []
    for row in rows:
        key, data_version = str(row.get("Ref_Key")), str(row.get("DataVersion"))
        if not any(same_data_version(v, data_version) for v in known.get(key, ())):
            differing.append(key)
    return differing


def _batches(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), KEYS_PER_FILTER):
        yield keys[start : start + KEYS_PER_FILTER]


def _any_key(field: str, keys: list[str]) -> str:
    return " or ".join(f"{field} eq guid'{key}'" for key in keys)


def _quote(value: str) -> str:
    """A string literal's inside for ``$filter`` (a quote is doubled)."""
    return value.replace("'", "''")


def _number(value: Decimal) -> int | float:
    # Edm.Double in 1C's JSON; money has two decimals, quantities three: a float holds them.
    return int(value) if value == value.to_integral_value() else float(value)
