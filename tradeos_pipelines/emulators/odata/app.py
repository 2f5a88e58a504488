"""The emulator's ASGI app: 1C's standard OData interface and the test controls.

URL layout (publication ``/trade`` by default)::

    /trade/odata/standard.odata/                              service document
    /trade/odata/standard.odata/$metadata                     EDMX (XML only)
    /trade/odata/standard.odata/<Set>                         GET list, POST create
    /trade/odata/standard.odata/<Set>/$count                  plain-text number
    /trade/odata/standard.odata/<Set>(guid'…')                GET, PATCH (PUT = PATCH)
    /trade/odata/standard.odata/Document_ЗаказКлиента(guid'…')/Post|Unpost
    /trade/odata/standard.odata/<Register>_RecordType/SliceLast(Condition='…',Period=datetime'…')
    /trade/odata/standard.odata/AccumulationRegister_СвободныеОстатки/Balance(Dimensions='…')
    /_control/…                                               JSON controls (see _control)

A bare ASGI callable rather than a framework: a page is mostly a join of stored row bytes.
Anything else under the host answers as the web server in front of 1C would: its HTML page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus
from uuid import UUID

import orjson

from tradeos_pipelines.emulators.asgi import (
    control_count,
    control_refusal,
    drop,
    lifespan,
    read_body,
    respond,
)
from tradeos_pipelines.emulators.odata import formats
from tradeos_pipelines.emulators.odata.infobase import Fault, Infobase, not_found
from tradeos_pipelines.emulators.odata.metadata import build_metadata
from tradeos_pipelines.emulators.odata.query import (
    ODataError,
    Row,
    Selection,
    compile_filter,
    format_datetime,
    not_supported,
    parse_count,
    parse_datetime,
    parse_error,
    parse_orderby,
    parse_select,
)
from tradeos_pipelines.emulators.odata.schema import (
    ORDERS,
    STOCK,
    STOCK_DIMENSIONS,
    EntityType,
    MetaObject,
)
from tradeos_pipelines.emulators.odata.stores import ObjectStore, Table, read, serialise

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SERVICE = "/odata/standard.odata"
QUERY_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$format", "$inlinecount"}
ALLOWED_ONLY = ("allowedOnly", "$allowedOnly")
# 1C's answer to a transient failure inside the platform (a lock wait that timed out).
LOCK_TIMEOUT = (
    "Конфликт блокировок при выполнении транзакции: Превышено максимальное время ожидания "
    "предоставления блокировки"
)


class Answer:
    """A response: status, body bytes, content type, extra headers."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: bytes = formats.JSON,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


def error_answer(error: ODataError) -> Answer:
    """1C's error object with the error's HTTP status."""
    return Answer(error.status, formats.error_body(error.code, error.message))


def json_answer(status: int, data: Any) -> Answer:
    """Any JSON (the controls' answers)."""
    return Answer(status, orjson.dumps(data))


@dataclass
class Request:
    """What a handler needs from one request to the OData interface."""

    method: str
    resource: str  # the path after standard.odata/, percent-decoded
    query: dict[str, str]
    headers: dict[bytes, bytes]
    body: bytes
    root: str  # absolute URL of standard.odata, for odata.metadata and Location

    @property
    def as_json(self) -> bool:
        """JSON asked for (with or without metadata), not Atom."""
        return self.format != "atom"

    @property
    def format(self) -> str:
        """``json``, ``nometadata`` (JSON without annotations) or ``atom``."""
        wanted = self.query.get("$format")
        accept = self.headers.get(b"accept", b"").decode("latin-1")
        if wanted is None:
            if "application/json" not in accept:
                return "atom"
            wanted = accept
        lowered = wanted.lower().replace(" ", "")
        if lowered in ("atom", "xml") or lowered.startswith("application/atom+xml"):
            return "atom"
        if lowered == "json" or lowered.startswith("application/json"):
            return "nometadata" if "odata=nometadata" in lowered else "json"
        raise ODataError(400, "3", f"Запрошенный тип представления не поддерживается: {wanted}")

    @property
    def allowed_only(self) -> bool:
        """``allowedOnly=true``: leave out rows the user may not read instead of failing."""
        return any(self.query.get(name, "").lower() == "true" for name in ALLOWED_ONLY)


@dataclass
class Segment:
    """One step of a resource path: ``Catalog_X(guid'…')`` is name and arguments."""

    name: str
    args: str | None  # the text between the parentheses


def split_resource(resource: str) -> list[Segment]:
    """``Set(guid'…')/Post`` → segments; quotes may hold ``/`` and parentheses."""
    segments = []
    position = 0
    while position < len(resource):
        start = position
        while position < len(resource) and resource[position] not in "(/":
            position += 1
        name = resource[start:position]
        args = None
        if position < len(resource) and resource[position] == "(":
            depth, quoted, begin = 0, False, position + 1
            while position < len(resource):
                char = resource[position]
                if char == "'":
                    quoted = not quoted
                elif not quoted and char == "(":
                    depth += 1
                elif not quoted and char == ")":
                    depth -= 1
                    if depth == 0:
                        break
                position += 1
            if position >= len(resource):
                raise ODataError(400, "6", f"Неверный URL: незакрытая скобка в {resource}")
            args = resource[begin:position]
            position += 1
        segments.append(Segment(name, args))
        if position < len(resource):
            if resource[position] != "/":
                raise ODataError(400, "6", f"Неверный URL: {resource}")
            position += 1
    return segments


def split_arguments(text: str) -> dict[str, str]:
    """``Condition='a eq ''x''',Period=datetime'…'`` → ``{"Condition": "a eq 'x'", …}``."""
    arguments: dict[str, str] = {}
    position = 0
    while position < len(text):
        equals = text.find("=", position)
        if equals < 0:
            raise ODataError(400, "21", f"Неверный аргумент функции: {text[position:]}")
        name = text[position:equals].strip()
        position = equals + 1
        start = position
        quoted = False
        while position < len(text) and (quoted or text[position] != ","):
            if text[position] == "'":
                quoted = not quoted
            position += 1
        arguments[name] = text[start:position].strip()
        position += 1
    return arguments


def unquote_argument(value: str) -> str:
    """A function argument ``'…'`` (``''`` escapes a quote) as its text."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def parse_key(args: str, entity_set: str) -> str:
    """``guid'…'`` or ``Ref_Key=guid'…'`` → the key; anything else is 1C's code 6."""
    text = args.strip()
    if text.startswith("Ref_Key="):
        text = text[len("Ref_Key=") :].strip()
    if text.startswith("guid'") and text.endswith("'"):
        try:
            return str(UUID(text[5:-1]))
        except ValueError:
            pass
    raise ODataError(400, "6", f"Неверный ключ сущности {entity_set}({args})")


def parse_query(raw: bytes) -> dict[str, str]:
    """Percent-decoded query parameters; ``+`` stays a plus, as in 1C (it is not a space)."""
    query: dict[str, str] = {}
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        query[unquote(name, encoding="utf-8")] = unquote(value, encoding="utf-8")
    return query


class ODataEmulatorApp:
    """ASGI app serving one :class:`Infobase` as 1C's standard OData interface."""

    def __init__(self, infobase: Infobase) -> None:
        self.infobase = infobase
        self._metadata: tuple[frozenset[str], bytes] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers = {name.lower(): value for name, value in scope["headers"]}
        body = await read_body(receive)
        if path.startswith("/_control/"):
            answer = self._control(method, path[len("/_control/") :], scope, headers, body)
            await respond(send, answer)
            return
        root = self.infobase.options.publication + SERVICE
        if path != root and not path.startswith(root + "/"):
            await self._respond(send, self._page(404), "")
            return
        resource = path[len(root) + 1 :]
        infobase = self.infobase
        label = f"{method} {_label(resource)}"
        infobase.counters.requests[label] += 1
        limit = infobase.options.max_query_length
        if limit is not None and len(scope["query_string"]) > limit:
            await self._respond(send, self._long_url(), "")
            return
        query = unquote_plus(
            scope["query_string"].decode("latin-1"), encoding="utf-8", errors="replace"
        )
        fault = infobase.take_fault(method, resource, path, query)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                await drop(send)
                return
            if fault.status is not None:
                await self._respond(send, self._fault_answer(fault), "")
                return
        answer = self._authorise(headers)
        set_name = ""
        if answer is None:
            host = headers.get(b"host", b"localhost").decode("latin-1")
            request = Request(
                method,
                resource,
                parse_query(scope["query_string"]),
                headers,
                body,
                f"{scope.get('scheme', 'http')}://{host}{root}",
            )
            try:
                answer, set_name = await self._route(request)
            except ODataError as error:
                answer = error_answer(error)
        await self._respond(send, answer, set_name)

    async def _respond(self, send: Send, answer: Answer, set_name: str) -> None:
        counters = self.infobase.counters
        counters.responses[str(answer.status)] += 1
        counters.bytes_served["total"] += len(answer.body)
        if set_name:
            counters.bytes_served[set_name] += len(answer.body)
        server = formats.SERVER_HEADERS[self.infobase.options.web_server]
        answer.headers = (
            (b"server", server),
            (b"dataserviceversion", b"3.0"),
            *answer.headers,
        )
        await respond(send, answer)

    # ----- the web server in front of 1C ------------------------------------------------------
    def _page(self, status: int, detail: str | None = None) -> Answer:
        server = self.infobase.options.web_server
        return Answer(status, formats.web_server_page(server, status, detail), formats.HTML)

    def _long_url(self) -> Answer:
        if self.infobase.options.web_server == "iis":
            return self._page(
                404,
                "HTTP Error 404.15 - Not Found: the request filtering module is configured to "
                "deny a request where the query string is too long.",
            )
        return self._page(414)

    def _fault_answer(self, fault: Fault) -> Answer:
        status = fault.status
        assert status is not None
        if fault.body is not None:
            default = formats.HTML if fault.body.lstrip().startswith("<") else formats.TEXT
            content_type = fault.content_type.encode() if fault.content_type else default
            return Answer(status, fault.body.encode(), content_type)
        if status == 500:
            return Answer(500, formats.error_body("-1", LOCK_TIMEOUT))
        answer = self._page(status)
        if status == 401:
            answer.headers = ((b"www-authenticate", b'Basic realm="1C:Enterprise"'),)
        if fault.retry_after is not None:
            answer.headers = (*answer.headers, (b"retry-after", str(fault.retry_after).encode()))
        return answer

    def _authorise(self, headers: dict[bytes, bytes]) -> Answer | None:
        """Basic auth with UTF-8 credentials, the only form 1C accepts for a Cyrillic user."""
        options = self.infobase.options
        if options.username is None:
            return None
        authorization = headers.get(b"authorization", b"")
        if authorization[:6].lower() == b"basic ":
            try:
                supplied = base64.b64decode(authorization[6:].strip(), validate=True)
            except (ValueError, binascii.Error):
                supplied = b""
            expected = f"{options.username}:{options.password}".encode()
            if hmac.compare_digest(supplied, expected):
                return None
        answer = self._page(401)
        answer.headers = ((b"www-authenticate", b'Basic realm="1C:Enterprise"'),)
        return answer

    # ----- routing ------------------------------------------------------------------------------
    async def _route(self, request: Request) -> tuple[Answer, str]:
        for name in request.query:
            if name.startswith("$") and name not in QUERY_OPTIONS and name != "$allowedOnly":
                if name in ("$expand", "$count"):
                    raise not_supported(f"опция запроса {name}")
                raise parse_error(name, "неизвестная опция запроса")
        segments = split_resource(request.resource)
        if not segments:
            if request.method != "GET":
                raise ODataError(405, "19", "Использованный HTTP-метод запрещен в данном контексте")
            return self._service_document(request), ""
        first = segments[0]
        if first.name == "$metadata" and len(segments) == 1:
            return Answer(200, self._metadata_document(), formats.XML), ""
        obj = self.infobase.published_object(first.name)
        if obj is None:
            raise ODataError(404, "6", f"Сегмент пути {first.name} не найден!")
        rest = segments[1:]
        method = request.method
        if first.args is None and not rest:
            if method == "GET":
                return self._collection(request, obj, first.name), first.name
            if method == "POST":
                return self._create(request, obj, first.name), first.name
        elif first.args is None and len(rest) == 1 and rest[0].name == "$count":
            if method == "GET":
                return self._count(request, obj, first.name), first.name
        elif first.args is not None and not rest:
            key = parse_key(first.args, first.name)
            if method == "GET":
                return self._entity(request, obj, first.name, key), first.name
            if method in ("PATCH", "PUT", "MERGE"):
                return self._update(request, obj, first.name, key), first.name
            if method == "DELETE":
                raise not_supported("удаление объектов (DELETE)")
        elif first.args is not None and len(rest) == 1 and rest[0].name in ("Post", "Unpost"):
            if method == "POST":
                key = parse_key(first.args, first.name)
                return self._post(request, obj, first.name, key, rest[0].name), first.name
        elif first.args is None and rest and rest[0].name in ("SliceLast", "SliceFirst", "Balance"):
            counting = len(rest) == 2 and rest[1].name == "$count"
            if method == "GET" and (len(rest) == 1 or counting):
                answer = await self._virtual(request, obj, first.name, rest[0], counting)
                return answer, f"{first.name}/{rest[0].name}"
        else:
            unknown = rest[0].name if rest else first.name
            raise ODataError(400, "6", f"Метод {unknown} не найден")
        raise ODataError(405, "19", "Использованный HTTP-метод запрещен в данном контексте")

    def _service_document(self, request: Request) -> Answer:
        sets = [
            name
            for name, owner in self.infobase.set_owner.items()
            if owner in self.infobase.published
        ]
        body = formats.service_document(request.root, sets, request.as_json)
        return Answer(200, body, formats.JSON if request.as_json else formats.XML)

    def _metadata_document(self) -> bytes:
        published = frozenset(self.infobase.published)
        if self._metadata is None or self._metadata[0] != published:
            document = build_metadata(self.infobase.objects.values(), set(published))
            self._metadata = (published, document)
        return self._metadata[1]

    # ----- reading ------------------------------------------------------------------------------
    def _rows_answer(
        self,
        request: Request,
        table: Table,
        access_object: MetaObject,
        entity_set: str,
        metadata_name: str,
    ) -> Answer:
        """A collection (an entity set or a virtual table) with every query option applied."""
        entity = table.entity
        query = request.query
        filter_ = compile_filter(query.get("$filter"), entity)
        selection = parse_select(query.get("$select"), entity)
        orderby = parse_orderby(query.get("$orderby"), entity)
        top = parse_count(query.get("$top"), "$top")
        skip = parse_count(query.get("$skip"), "$skip") or 0
        inline = query.get("$inlinecount", "none")
        if inline not in ("none", "allpages"):
            raise parse_error("$inlinecount", f"неверное значение {inline!r}")
        if inline == "allpages":
            # The vendor's guide: $inlinecount makes 1C ignore $skip and $top.
            top, skip = None, 0
        infobase = self.infobase
        access = infobase.access(access_object, entity_set, request.allowed_only)
        result = read(
            table,
            filter=filter_,
            orderby=orderby,
            skip=skip,
            top=top,
            access=access,
            count=inline == "allpages",
            cache=infobase.cache,
            generation=infobase.generation,
        )
        infobase.counters.rows_served[entity_set] += len(result.rows)
        metadata = f"{request.root}/$metadata#{metadata_name}"
        if request.format == "atom":
            rows = [_project(row, selection) for row in result.rows]
            body = formats.atom_feed(request.root, entity_set, rows, entity, result.count)
            return Answer(200, body, formats.ATOM_FEED)
        encoded = [_encode(row, entity, selection) for row in result.rows]
        meta = metadata if request.format == "json" else None
        return Answer(200, formats.json_collection(encoded, meta, result.count))

    def _collection(self, request: Request, obj: MetaObject, entity_set: str) -> Answer:
        table = self.infobase.table(entity_set)
        return self._rows_answer(request, table, obj, entity_set, entity_set)

    def _count(self, request: Request, obj: MetaObject, entity_set: str) -> Answer:
        table = self.infobase.table(entity_set)
        return self._count_rows(request, obj, table, entity_set)

    def _count_rows(
        self, request: Request, obj: MetaObject, table: Table, entity_set: str
    ) -> Answer:
        infobase = self.infobase
        result = read(
            table,
            filter=compile_filter(request.query.get("$filter"), table.entity),
            top=0,
            access=infobase.access(obj, entity_set, request.allowed_only),
            count=True,
            cache=infobase.cache,
            generation=infobase.generation,
        )
        return Answer(200, str(result.count).encode(), formats.TEXT)

    def _store(self, entity_set: str) -> ObjectStore:
        store = self.infobase.catalogs.get(entity_set)
        if store is None:
            raise not_supported(f"обращение к записи {entity_set} по ключу")
        return store

    def _entity(self, request: Request, obj: MetaObject, entity_set: str, key: str) -> Answer:
        store = self._store(entity_set)
        access = self.infobase.access(obj, entity_set, allowed_only=False)
        raw = store.raw(key)
        if raw is None:
            raise not_found(entity_set, key)
        if access is not None and key in access.denied:
            raise access.denial()
        selection = parse_select(request.query.get("$select"), store.entity)
        self.infobase.counters.rows_served[entity_set] += 1
        return self._object_answer(request, entity_set, store.entity, raw, selection, 200)

    def _object_answer(
        self,
        request: Request,
        entity_set: str,
        entity: EntityType,
        raw: bytes,
        selection: Selection | None,
        status: int,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> Answer:
        row = Row(raw=raw, loads=orjson.loads)
        if request.format == "atom":
            body = formats.atom_entry(request.root, entity_set, _project(row, selection), entity)
            return Answer(status, body, formats.ATOM_ENTRY, headers)
        metadata = None
        if request.format == "json":
            metadata = f"{request.root}/$metadata#{entity_set}/@Element"
        body = formats.json_entity(_encode(row, entity, selection), metadata)
        return Answer(status, body, formats.JSON, headers)

    async def _virtual(
        self, request: Request, obj: MetaObject, entity_set: str, call: Segment, counting: bool
    ) -> Answer:
        """``SliceLast``/``SliceFirst`` of the price register, ``Balance`` of free stock."""
        infobase = self.infobase
        arguments = {
            name: value
            for name, value in request.query.items()
            if name in ("Condition", "Period", "Dimensions")
        }
        arguments.update(split_arguments(call.args or ""))
        prices = infobase.price_register
        slices = ("SliceLast", "SliceFirst")
        if call.name in slices and entity_set in (prices, prices + "_RecordType"):
            allowed = {"Condition", "Period"}
            _check_arguments(call.name, arguments, allowed)
            entity = infobase.entity(prices + "_RecordType")
            condition = compile_filter(
                _argument(arguments, "Condition"), entity, option="Condition"
            )
            period = _period(arguments.get("Period"))
            infobase.access(obj, entity_set, request.allowed_only)
            table = infobase.slice_table(
                first=call.name == "SliceFirst", period=period, condition=condition
            )
            metadata_name = f"{prices}_RecordType"
        elif call.name == "Balance" and entity_set == STOCK:
            _check_arguments(call.name, arguments, {"Condition", "Dimensions", "Period"})
            dimensions = _dimensions(arguments.get("Dimensions"))
            _period(arguments.get("Period"))  # accepted; balances are kept only as of now
            balance = infobase.row_types[f"{STOCK}_Balance"]
            dims = EntityType("Dimensions", tuple(p for p in balance.props if p.edm == "Edm.Guid"))
            condition = compile_filter(_argument(arguments, "Condition"), dims, option="Condition")
            infobase.access(obj, entity_set, request.allowed_only)
            if infobase.balance_delay:
                await asyncio.sleep(infobase.balance_delay)
            table = infobase.balance_table(dimensions, condition)
            metadata_name = f"{STOCK}_Balance"
        else:
            raise ODataError(400, "6", f"Метод {call.name} не найден")
        if counting:
            return self._count_rows(request, obj, table, entity_set)
        return self._rows_answer(request, table, obj, f"{entity_set}/{call.name}", metadata_name)

    # ----- writing ------------------------------------------------------------------------------
    def _body(self, request: Request) -> Any:
        try:
            return orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise ODataError(500, "-1", "Непредвиденный символ при чтении JSON") from None

    def _create(self, request: Request, obj: MetaObject, entity_set: str) -> Answer:
        store = self._store(entity_set)
        self.infobase.access(obj, entity_set, allowed_only=False)
        row = self.infobase.create(entity_set, self._body(request))
        location = f"{request.root}/{entity_set}(guid'{row['Ref_Key']}')".encode()
        return self._object_answer(
            request, entity_set, store.entity, serialise(row), None, 201, ((b"location", location),)
        )

    def _update(self, request: Request, obj: MetaObject, entity_set: str, key: str) -> Answer:
        store = self._store(entity_set)
        access = self.infobase.access(obj, entity_set, allowed_only=False)
        if access is not None and key in access.denied:
            raise access.denial()
        row = self.infobase.update(entity_set, key, self._body(request))
        return self._object_answer(request, entity_set, store.entity, serialise(row), None, 200)

    def _post(
        self, request: Request, obj: MetaObject, entity_set: str, key: str, action: str
    ) -> Answer:
        if entity_set != ORDERS:
            raise ODataError(400, "6", f"Метод {action} не найден")
        self.infobase.access(obj, entity_set, allowed_only=False)
        operational = request.query.get("PostingModeOperational", "false")
        if operational not in ("true", "false"):
            raise ODataError(400, "21", f"Неверное значение PostingModeOperational: {operational}")
        self.infobase.post(key, action == "Post")
        return Answer(200, b"", formats.JSON)

    # ----- controls -----------------------------------------------------------------------------
    def _control(
        self,
        method: str,
        route: str,
        scope: Scope,
        headers: dict[bytes, bytes],
        body: bytes,
    ) -> Answer:
        """The test controls; JSON in and out, behind ``X-Control-Key`` when one is set."""
        refusal = control_refusal(self.infobase.options.control_key, headers, body)
        if refusal is not None:
            return json_answer(refusal[0], {"error": refusal[1]})
        try:
            data = orjson.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            return self._control_route(method, route, scope, data)
        except LookupError:
            return json_answer(404, {"error": f"no control endpoint {method} /_control/{route}"})
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return json_answer(400, {"error": str(exc)})

    def _control_route(self, method: str, route: str, scope: Scope, data: dict[str, Any]) -> Answer:
        infobase = self.infobase
        count = control_count(data)
        ids = data.get("ids")
        if method == "GET":
            if route == "stats":
                return json_answer(200, self._stats())
            if route == "orders":
                query = parse_query(scope["query_string"])
                keys = infobase.created_orders
                if query.get("all") == "true":
                    keys = list(infobase.orders.ref_keys())
                return json_answer(200, {"orders": [infobase.orders.get(k) for k in keys]})
            if route == "stock":
                return json_answer(200, {"rows": infobase.stock_rows()})
            raise LookupError(route)
        if method == "DELETE" and route == "faults":
            infobase.faults.clear()
            return json_answer(200, {"faults": []})
        if method != "POST":
            raise LookupError(route)
        if route == "reset":
            infobase.reset()
            self._metadata = None
            return json_answer(200, self._stats())
        if route == "items/change":
            changed = infobase.change_items(count, ids, data.get("fields"))
            return json_answer(200, {"ids": changed})
        if route == "items/delete-mark":
            marked = infobase.mark_deleted(count, ids, bool(data.get("mark", True)))
            return json_answer(200, {"ids": marked})
        if route == "items/add":
            stock = data.get("stock", 0)
            if isinstance(stock, bool) or not isinstance(stock, int | float):
                raise ValueError("stock must be a number")
            return json_answer(200, {"ids": infobase.add_items(count, float(stock))})
        if route == "prices/change":
            return json_answer(200, infobase.change_prices(count, ids, data.get("price_type")))
        if route == "stock/change":
            return json_answer(200, {"rows": infobase.change_stock(count)})
        if route == "faults":
            infobase.add_fault(
                Fault(
                    status=data.get("status"),
                    body=data.get("body"),
                    content_type=data.get("content_type"),
                    remaining=count,
                    path=data.get("path"),
                    method=data.get("method"),
                    delay=float(data.get("delay", 0)),
                    drop=bool(data.get("drop", False)),
                    retry_after=data.get("retry_after"),
                    query=data.get("query"),
                )
            )
            return json_answer(200, {"faults": self._faults()})
        if route == "publish":
            infobase.publish(list(data["names"]))
        elif route == "unpublish":
            infobase.unpublish(list(data["names"]))
        elif route == "published":
            infobase.set_published(list(data["names"]))
        elif route == "rights/deny":
            infobase.deny_read(str(data["object"]), ids)
        elif route == "rights/allow":
            infobase.allow_read(str(data["object"]))
        elif route == "balance-delay":
            seconds = float(data["seconds"])
            if seconds < 0:
                raise ValueError("seconds must not be negative")
            infobase.balance_delay = seconds
        elif route == "posting-failure":
            infobase.arm_posting_failure(count, data.get("message"), ids)
        else:
            raise LookupError(route)
        return json_answer(200, self._stats())

    def _faults(self) -> list[dict[str, Any]]:
        return [vars(f).copy() for f in self.infobase.faults if f.remaining > 0]

    def _stats(self) -> dict[str, Any]:
        infobase = self.infobase
        return {
            "counters": infobase.counters.as_dict(),
            "rows": {
                **{name: len(store) for name, store in infobase.catalogs.items()},
                "InformationRegister_ШтрихкодыУпаковокТоваров": len(infobase.barcodes.codes),
                f"{infobase.price_register}_RecordType": len(infobase.prices),
                f"{STOCK}/Balance": len(infobase.stock),
            },
            "published": sorted(infobase.published),
            "denied": {
                name: None if ids is None else sorted(ids) for name, ids in infobase.denied.items()
            },
            "faults": self._faults(),
            "balance_delay": infobase.balance_delay,
            "posting_failures": [
                {"remaining": f.remaining, "message": f.message, "ids": f.ids and sorted(f.ids)}
                for f in infobase.posting_failures
            ],
            "created_orders": list(infobase.created_orders),
        }


# ----- helpers ----------------------------------------------------------------------------------
def _label(resource: str) -> str:
    """The counter name of a request: keys and arguments dropped (``Set(…)/Post``)."""
    try:
        segments = split_resource(resource)
    except ODataError:
        return resource
    return "/".join(s.name + ("(…)" if s.args is not None else "") for s in segments) or "/"


def _project(row: Row, selection: Selection | None) -> dict[str, Any]:
    """The row's dict narrowed to ``$select``."""
    data = row.data
    if selection is None:
        return data
    out = {name: data[name] for name in selection.names}
    for part, fields in selection.rows.items():
        out[part] = [{f: line[f] for f in fields if f in line} for line in data[part]]
    return out


def _encode(row: Row, entity: EntityType, selection: Selection | None) -> bytes:
    """The row's JSON narrowed to ``$select``.

    A selection that is a prefix of the type's properties (``Ref_Key,DataVersion``: the
    change-detection read) is cut straight out of the stored bytes: the next property's
    ``,"Name":`` can only occur at the top level, since JSON escapes every ``"`` in a string.
    """
    if selection is None:
        return row.raw if row.raw is not None else serialise(row.data)
    if row.raw is not None and selection.is_prefix_of(entity):
        if len(selection.names) == len(entity.names):
            return row.raw
        following = entity.names[len(selection.names)]
        cut = row.raw.find(b',"' + following.encode() + b'":')
        if cut > 0:
            return row.raw[:cut] + b"}"
    return orjson.dumps(_project(row, selection))


def _check_arguments(function: str, arguments: dict[str, str], allowed: set[str]) -> None:
    unknown = set(arguments) - allowed
    if unknown:
        raise ODataError(
            400, "21", f"Неверный аргумент функции {function}: {', '.join(sorted(unknown))}"
        )


def _argument(arguments: dict[str, str], name: str) -> str | None:
    value = arguments.get(name)
    return unquote_argument(value) if value is not None else None


def _period(value: str | None) -> str | None:
    """A ``Period=datetime'…'`` argument as 1C's date text."""
    if value is None:
        return None
    text = value[len("datetime") :] if value.startswith("datetime") else value
    try:
        return format_datetime(parse_datetime(unquote_argument(text)))
    except ValueError:
        raise ODataError(400, "21", f"Неверное значение аргумента Period: {value}") from None


def _dimensions(value: str | None) -> tuple[str, ...]:
    if value is None:
        return STOCK_DIMENSIONS
    names = tuple(n.strip() for n in unquote_argument(value).split(",") if n.strip())
    unknown = [n for n in names if n not in STOCK_DIMENSIONS]
    if unknown or not names:
        raise parse_error("Dimensions", f"неизвестные измерения {', '.join(unknown) or '(нет)'}")
    return names
