"""The emulator's ASGI app: the contract under ``{BASE}/hs/api`` and test controls.

A bare ASGI callable rather than a framework: a page is a join of pre-serialised rows and
nothing else should cost time. The 1C service is answered under any publication prefix
(``/trade/hs/api/stock``, ``/hs/api/stock``); control endpoints live at ``/_control/...`` and
need no credentials (tests, benchmarks and the demo use them).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs
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
from tradeos_pipelines.emulators.http_service.clock import parse_local
from tradeos_pipelines.emulators.http_service.infobase import Fault, Infobase, ValidationFailed
from tradeos_pipelines.emulators.http_service.quirks import BOM
from tradeos_pipelines.emulators.http_service.store import BadCursor, decode_cursor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"
HTML = b"text/html; charset=utf-8"

HEALTH = {"status": "ok", "configuration": "УправлениеТорговлей", "version": "11.5.19.100"}
LICENSE_ERROR = (
    "Ошибка при вызове метода контекста (Выполнить): Превышено количество лицензий на "
    "клиентское подключение к серверу 1С:Предприятия"
).encode()
HTML_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx/1.24.0</center></body></html>",
    503: b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    b"<h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx/1.24.0</center>"
    b"</body></html>",
    200: "<!DOCTYPE html><html><head><title>Вход в систему</title></head><body><form>"
    "Имя пользователя</form></body></html>".encode(),
}
LIST_ENTITIES = ("nomenclature", "stock", "orders")


class Answer:
    """A response: status, body bytes, content type, extra headers."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


def json_answer(status: int, data: Any) -> Answer:
    return Answer(status, orjson.dumps(data))


def error_answer(status: int, error: str, message: str) -> Answer:
    return json_answer(status, {"error": error, "message": message})


class EmulatorApp:
    """ASGI app serving one :class:`Infobase`."""

    def __init__(self, infobase: Infobase) -> None:
        self.infobase = infobase

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/_control/"):
            body = await read_body(receive)
            answer = self._control(method, path[len("/_control/") :], scope, body)
            await respond(send, answer)
            return
        marker = path.find("/hs/api/")
        if marker < 0:
            await respond(send, Answer(404, "Не найдено: ".encode() + path.encode(), TEXT))
            return
        await self._serve_api(scope, receive, send, method, path[marker:])

    async def _serve_api(
        self, scope: Scope, receive: Receive, send: Send, method: str, api_path: str
    ) -> None:
        infobase = self.infobase
        infobase.counters.requests[f"{method} {api_path}"] += 1
        body = await read_body(receive)
        fault = infobase.take_fault(method, api_path)
        if fault is not None:
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "drop":
                await drop(send)
                return
            elif fault.kind == "echo_401":
                echoed = b"Wrong password for " + _supplied_credentials(_headers(scope))
                await self._respond(send, Answer(401, echoed, TEXT))
                return
            elif fault.kind == "echo_500":
                echoed = "Ошибка сеанса ".encode() + _supplied_credentials(_headers(scope))
                await self._respond(send, Answer(500, echoed, TEXT))
                return
            elif fault.kind not in ("drop_after", "truncated", "envelope", "echo_version"):
                await self._respond(send, _fault_answer(fault))
                return
        answer = self._authorise(_headers(scope))
        if answer is None:
            answer = self._route(method, api_path, parse_qs(scope["query_string"].decode()), body)
        if fault is not None and answer.status < 300:
            if fault.kind == "drop_after":
                await drop(send)
                return
            if fault.kind == "truncated":
                answer.body = answer.body[: max(1, len(answer.body) // 2)]
            elif fault.kind == "envelope":
                answer.body = b'{"data":[],"result":"ok"}'
            elif fault.kind == "echo_version":
                echoed = _supplied_credentials(_headers(scope)).decode("utf-8", "replace")
                version = orjson.dumps(HEALTH["version"] + " (" + echoed + ")")
                answer.body = answer.body.replace(orjson.dumps(HEALTH["version"]), version)
        await self._respond(send, answer)

    async def _respond(self, send: Send, answer: Answer) -> None:
        self.infobase.counters.responses[str(answer.status)] += 1
        if self.infobase.quirks and answer.content_type == JSON:
            answer.body = BOM + answer.body
        await respond(send, answer)

    # ----- 1C service -------------------------------------------------------------------
    def _authorise(self, headers: dict[bytes, bytes]) -> Answer | None:
        options = self.infobase.options
        if options.api_key is None and options.basic is None:
            return None
        key = headers.get(b"x-api-key")
        if key is not None and options.api_key is not None:
            if hmac.compare_digest(key, options.api_key.encode()):
                return None
            return Answer(403, "Доступ запрещён: неверный ключ API".encode(), TEXT)
        authorization = headers.get(b"authorization", b"")
        if authorization[:6].lower() == b"basic " and options.basic is not None:
            try:
                supplied = base64.b64decode(authorization[6:].strip(), validate=True)
            except (ValueError, binascii.Error):
                supplied = b""
            expected = f"{options.basic[0]}:{options.basic[1]}".encode()
            if hmac.compare_digest(supplied, expected):
                return None
        answer = error_answer(401, "unauthorized", "Неверное имя пользователя или пароль")
        if options.basic is not None:
            answer.headers = ((b"www-authenticate", b'Basic realm="1C", charset="UTF-8"'),)
        return answer

    def _route(
        self, method: str, api_path: str, query: dict[str, list[str]], body: bytes
    ) -> Answer:
        route = api_path[len("/hs/api/") :].rstrip("/")
        if route == "health" and method == "GET":
            return json_answer(200, HEALTH)
        if route == "orders" and method == "POST":
            return self._create_order(body)
        if route in LIST_ENTITIES:
            if method != "GET":
                return Answer(405, f"Метод {method} не поддерживается".encode(), TEXT)
            return self._list(route, query)
        return Answer(404, f"Не найден метод HTTP-сервиса: {api_path}".encode(), TEXT)

    def _list(self, entity: str, query: dict[str, list[str]]) -> Answer:
        def param(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        raw_limit = param("limit") or "100"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            return error_answer(
                400,
                "bad_request",
                f"Параметр limit должен быть целым числом от 1 до 1000, получено {raw_limit!r}",
            )
        try:
            since = param("changed_since")
            since_ms = parse_local(since) if since else None
            cursor = param("cursor")
            after = decode_cursor(cursor) if cursor else None
        except (ValueError, BadCursor) as exc:
            return error_answer(400, "bad_request", f"Некорректный параметр: {exc}")
        accept: Callable[[str], bool] | None = None
        warehouse_id = param("warehouse_id")
        if entity == "stock" and warehouse_id:
            try:
                suffix = "/" + str(UUID(warehouse_id))
            except ValueError:
                return error_answer(
                    400,
                    "bad_request",
                    f"warehouse_id: не уникальный идентификатор {warehouse_id!r}",
                )

            def in_warehouse(key: str) -> bool:
                return key.endswith(suffix)

            accept = in_warehouse

        chunks, next_cursor, total = self.infobase.store(entity).page(
            after=after,
            since_ms=since_ms,
            limit=int(raw_limit),
            quirks=self.infobase.quirks,
            accept=accept,
        )
        self.infobase.counters.rows_served[entity] += len(chunks)
        tail = {"next_cursor": next_cursor}
        if total is not None:
            tail["total"] = total
        body = b'{"items":[' + b",".join(chunks) + b"]," + orjson.dumps(tail)[1:]
        return Answer(200, body)

    def _create_order(self, body: bytes) -> Answer:
        try:
            order = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error_answer(400, "bad_request", f"Некорректный JSON: {exc}")
        try:
            created, answer = self.infobase.create_order(order)
        except ValidationFailed as exc:
            return error_answer(422, "validation", str(exc))
        if created:
            return json_answer(201, answer)
        return json_answer(409, {"error": "duplicate", **answer})

    # ----- controls -----------------------------------------------------------------------
    def _control(self, method: str, route: str, scope: Scope, body: bytes) -> Answer:
        infobase = self.infobase
        refusal = control_refusal(infobase.options.control_key, _headers(scope), body)
        if refusal is not None:
            return json_answer(refusal[0], {"error": refusal[1]})
        try:
            data = orjson.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            count = control_count(data)
            ids = data.get("ids")
            if method == "GET" and route == "stats":
                return json_answer(200, self._stats())
            if method == "GET" and route == "orders":
                query = parse_qs(scope["query_string"].decode())
                external_id = query.get("external_id", [None])[-1]
                return json_answer(200, {"orders": infobase.find_orders(external_id)})
            if method != "POST" and not (method == "DELETE" and route == "faults"):
                raise LookupError
            if route == "reset":
                infobase.reset()
                return json_answer(200, self._stats())
            if route == "items/change":
                return json_answer(200, {"ids": infobase.change_items(count, ids)})
            if route == "items/delete-mark":
                return json_answer(200, {"ids": infobase.mark_deleted(count, ids)})
            if route == "stock/change":
                return json_answer(200, {"rows": infobase.change_stock(count)})
            if route == "orders/status":
                orders = infobase.set_order_status(count, data.get("id"), data.get("status"))
                return json_answer(200, {"orders": orders})
            if route == "bad-rows/fix":
                return json_answer(200, {"ids": infobase.fix_bad_rows(list(ids or []))})
            if route == "bad-rows":
                return json_answer(200, {"rows": infobase.inject_bad_rows(data["kind"], count)})
            if route == "faults" and method == "DELETE":
                infobase.faults.clear()
                return json_answer(200, {"faults": []})
            if route == "faults":
                infobase.add_fault(
                    Fault(
                        kind=str(data["kind"]),
                        remaining=count,
                        path=data.get("path"),
                        method=data.get("method"),
                        seconds=float(data.get("seconds", 0)),
                        retry_after=data.get("retry_after"),
                    )
                )
                return json_answer(200, {"faults": self._faults()})
            if route == "quirks":
                infobase.quirks = bool(data["enabled"])
                return json_answer(200, {"quirks": infobase.quirks})
        except LookupError:
            pass
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return json_answer(400, {"error": str(exc)})
        return json_answer(404, {"error": f"no control endpoint {method} /_control/{route}"})

    def _faults(self) -> list[dict[str, Any]]:
        return [vars(f).copy() for f in self.infobase.faults if f.remaining > 0]

    def _stats(self) -> dict[str, Any]:
        infobase = self.infobase
        return {
            "counters": infobase.counters.as_dict(),
            "rows": {name: len(infobase.store(name)) for name in LIST_ENTITIES},
            "warehouses": list(infobase.warehouses.values()),
            "quirks": infobase.quirks,
            "faults": self._faults(),
        }


def _fault_answer(fault: Fault) -> Answer:
    if fault.kind == "500":
        return Answer(500, LICENSE_ERROR, TEXT)
    if fault.kind in ("502", "503"):
        return Answer(int(fault.kind), HTML_PAGES[int(fault.kind)], HTML)
    if fault.kind == "429":
        headers = ()
        if fault.retry_after is not None:
            headers = ((b"retry-after", str(fault.retry_after).encode()),)
        return Answer(429, "Слишком много запросов, повторите позже".encode(), TEXT, headers)
    return Answer(200, HTML_PAGES[200], HTML)  # "html"


def _supplied_credentials(headers: dict[bytes, bytes]) -> bytes:
    """What the client authenticated with: the API key, or Basic's decoded ``user:password``."""
    if b"x-api-key" in headers:
        return headers[b"x-api-key"]
    authorization = headers.get(b"authorization", b"")
    if authorization[:6].lower() == b"basic ":
        try:
            return base64.b64decode(authorization[6:].strip(), validate=True)
        except (ValueError, binascii.Error):
            return authorization
    return b"(nothing)"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope["headers"]}
