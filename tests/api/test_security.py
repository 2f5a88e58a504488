"""Security of the sidecar (issue #13): each section is one numbered item of the issue.

Everything runs against the real sidecar (both uvicorn/websockets servers, real PostgreSQL and
Redis) from ``tests/api/conftest.py``; raw sockets are used where an HTTP client would hide
what the server does (a body never sent, headers that never end).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import uvicorn

from api.core.guard import DEFAULT_BODY_LIMIT, WEBHOOK_BODY_LIMIT
from api.core.http_limits import GuardedHttpToolsProtocol
from api.main import create_app

NO_TOKEN = "missing bearer token: send 'Authorization: Bearer <token>'"
TOO_LARGE = f"request body is larger than {DEFAULT_BODY_LIMIT} bytes"


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response read from ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _post_head(path: str, length: int, token: str | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---- 1. authenticate before reading a body; body caps; header and keep-alive time-outs ----


def test_a_100_mb_post_without_a_token_is_refused_before_its_body(sidecar, db):
    """Only the headers and 64 KiB of a declared 100 MB body are sent: the 401 comes anyway."""
    with socket.create_connection(_address(sidecar.base_url)) as sock:
        sock.sendall(_post_head("/api/v1/integrations", 100_000_000))
        sock.sendall(b"[" + b"0," * 32_000)
        started = time.monotonic()
        status, headers, body = _read_response(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert headers["connection"] == "close"
    assert orjson.loads(body) == {"detail": NO_TOKEN}
    # Before the fix the server waited for the remaining ~100 MB (the read timed out).
    assert elapsed < 5


def test_malformed_json_without_a_token_is_401_not_422(anonymous):
    response = anonymous.post(
        "/api/v1/integrations", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": NO_TOKEN}


def test_a_declared_oversized_body_with_a_token_is_413_before_reading(sidecar, db, admin_token):
    with socket.create_connection(_address(sidecar.base_url)) as sock:
        sock.sendall(_post_head("/api/v1/integrations", DEFAULT_BODY_LIMIT + 1, admin_token))
        status, _, body = _read_response(sock, timeout=5)
    assert status == 413
    assert orjson.loads(body) == {"detail": TOO_LARGE}


def test_a_chunked_body_is_stopped_when_it_passes_the_cap(api):
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):  # 40 x 32 KiB = 1.25 MiB, no Content-Length
            yield b"a" * 32_768
        yield b'"}'

    response = api.post("/integrations", content=chunks())
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": TOO_LARGE}


def test_the_webhook_route_has_its_own_cap(api, make_integration):
    make_integration("main-1c")
    body = b'{"entities": ["stock"], "sent_at": 0, "ids": ["' + b"x" * WEBHOOK_BODY_LIMIT + b'"]}'
    response = api.post("/webhooks/1c/main-1c", content=body)
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body is larger than {WEBHOOK_BODY_LIMIT} bytes"}
    # A body under the default cap but over the webhook's own is refused there only.
    assert WEBHOOK_BODY_LIMIT < len(body) < DEFAULT_BODY_LIMIT


@pytest.fixture
def short_header_deadline_server(sidecar) -> Iterator[tuple[str, int]]:
    """The sidecar app behind the sidecar's protocol with a 0.5 s header deadline."""

    class Protocol(GuardedHttpToolsProtocol):
        header_timeout = 0.5

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(runtime=sidecar.runtime), http=Protocol, log_level="warning")
    server = uvicorn.Server(config)
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_connection_that_stalls_in_its_headers_is_closed(short_header_deadline_server):
    with socket.create_connection(short_header_deadline_server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert _closed_within(sock, 3) is True
    with socket.create_connection(short_header_deadline_server) as silent:
        assert _closed_within(silent, 3) is True


def test_a_connection_sending_headers_in_time_is_served(short_header_deadline_server):
    with socket.create_connection(short_header_deadline_server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        sock.sendall(b"\r\n")
        status, _, _ = _read_response(sock, timeout=10)
    assert status == 200


def test_oversized_headers_close_the_connection_with_400(sidecar):
    with socket.create_connection(_address(sidecar.base_url)) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.sendall(b"X-Big: " + b"a" * (70 << 10) + b"\r\n\r\n")
        status, headers, body = _read_response(sock, timeout=5)
    assert status == 400
    assert body == b"Request headers too large."
    assert headers["connection"] == "close"


def test_health_answers_while_an_anonymous_client_streams_a_body(sidecar, anonymous):
    with socket.create_connection(_address(sidecar.base_url)) as sock:
        sock.sendall(_post_head("/api/v1/integrations", 100_000_000))
        status, _, _ = _read_response(sock, timeout=5)
        assert status == 401
        assert anonymous.get("/api/v1/health").status_code == 200
        # The server closed its side: nothing more of the 100 MB is read from us.
        assert _closed_within(sock, 5) is True


_ = httpx  # the fixtures hand out httpx clients


# ---- 2. bad input is a 422 naming the field (or an error frame), never a 500 ----------------

NUL_MESSAGE = "must not contain NUL (\\u0000) characters"


def _problems(response: httpx.Response) -> list[tuple[str, str]]:
    return [(item["field"], item["msg"]) for item in response.json()["detail"]]


def _new_integration(**fields: object) -> dict[str, object]:
    return {
        "name": "Основная база",
        "base_url": "http://1c.local/trade",
        "auth_type": "api_key",
        "api_key": "a-good-api-key",
        **fields,
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/integrations/%00", "integration_id"),
        ("/integrations/main%001c/health", "integration_id"),
        ("/integrations/a%00/logs", "integration_id"),
        ("/sync-logs?integration_id=%00", "integration_id"),
        ("/conflicts?entity=x%00y", "entity"),
        ("/stats?integration_id=%00", "integration_id"),
    ],
)
def test_a_nul_byte_in_an_id_or_filter_is_422_naming_it(api, path, field):
    response = api.get(path)
    assert response.status_code == 422, response.text
    assert _problems(response) == [(field, NUL_MESSAGE)]


def test_a_nul_byte_in_a_body_string_is_422_naming_the_field(api):
    response = api.post("/integrations", json=_new_integration(name="a\x00b"))
    assert response.status_code == 422
    assert _problems(response) == [("name", NUL_MESSAGE)]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"api_key": "ключ-доступа"},
            "api_key",
            "must be printable ASCII (it is sent in the X-API-Key header)",
        ),
        (
            {"api_key": "key\r\nX-Injected: 1"},
            "api_key",
            "must not contain control characters (newline, tab, ...)",
        ),
        (
            {"auth_type": "basic", "api_key": None, "username": "a:b", "password": "p"},
            "username",
            "must not contain ':' (HTTP Basic auth separates user and password with it)",
        ),
        (
            {"auth_type": "basic", "api_key": None, "username": "u", "password": "p\x07"},
            "password",
            "must not contain control characters (newline, tab, ...)",
        ),
    ],
)
def test_credentials_that_cannot_travel_in_a_header_are_refused(api, fields, field, message):
    response = api.post("/integrations", json=_new_integration(**fields))
    assert response.status_code == 422
    assert _problems(response) == [(field, message)]


def test_a_cyrillic_basic_user_is_accepted(api):
    response = api.post(
        "/integrations",
        json=_new_integration(
            auth_type="basic", api_key=None, username="Администратор", password="пароль"
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()["username"] == "Администратор"


def test_test_connection_with_a_stored_cyrillic_api_key_is_a_clear_error(api, make_integration):
    make_integration("main-1c", api_key="ключ")
    response = api.post("/integrations/main-1c/test-connection")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "latency_ms": 0.0,
        "version": None,
        "error": "stored api_key must be printable ASCII (it is sent in the X-API-Key header); "
        "set new credentials with PATCH /api/v1/integrations/main-1c",
        "protocol": "http_service",
        "findings": [],
        "price_types": [],
    }


def test_a_sync_with_a_stored_cyrillic_api_key_fails_naming_the_field(
    api, make_integration, emulator, session
):
    from sqlalchemy import select

    from tradeos_pipelines.engine import SyncFailed, sync_nomenclature
    from tradeos_pipelines.storage.tables import SyncLog

    make_integration("main-1c", base_url=emulator.base_url, api_key="ключ")
    before = emulator.control.counters()["requests"]
    with pytest.raises(SyncFailed) as failed:
        sync_nomenclature("main-1c")
    expected = (
        "1C: stored api_key must be printable ASCII (it is sent in the X-API-Key header); "
        "set new credentials with PATCH /api/v1/integrations/main-1c"
    )
    assert str(failed.value) == f"sync 1 failed: {expected}"
    # A settings problem is not worth a Dagster retry: the next attempt would fail the same way.
    assert failed.value.transient is False
    assert session.scalars(select(SyncLog.error)).one() == expected
    assert emulator.control.counters()["requests"] == before  # nothing was sent to 1C


@pytest.mark.parametrize("sent_at", [b"1e20", b"1" + b"0" * 30, b"-1e18"])
def test_a_webhook_sent_at_out_of_range_is_422(api, make_integration, sent_at):
    from api.services.webhooks import sign

    make_integration("main-1c", webhook_secret="webhook-secret-0123456789")
    body = b'{"entities": ["stock"], "sent_at": ' + sent_at + b"}"
    response = api.post(
        "/webhooks/1c/main-1c",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-TradeOS-Signature": sign("webhook-secret-0123456789", body),
        },
    )
    assert response.status_code == 422, response.text
    assert _problems(response) == [("sent_at", "unix seconds out of range (years 1..9999)")]


@pytest.mark.parametrize(
    "last_event_id", ["9" * 5000, "1-" + "1" * 21, "²-0", "18446744073709551616"]
)
def test_a_malformed_last_event_id_is_an_error_frame_and_the_socket_stays(
    ws_connect, last_event_id
):
    client = ws_connect("runs", last_event_id=last_event_id)
    assert client.recv_type("welcome") == {"type": "welcome", "channels": ["runs"]}
    assert client.recv_type("error") == {
        "type": "error",
        "error": f"last_event_id {last_event_id[:60]!r} is not an event id like 1732700000000-0",
    }
    client.send({"type": "ping"})
    assert client.recv_type("pong") == {"type": "pong"}


# ---- 3. one scrubber for everything that leaves or is stored --------------------------------

USER, SECRET = "Администратор", "пароль-секрет 42"


def test_the_scrubber_masks_every_encoding_of_a_secret():
    import base64
    import json
    from urllib.parse import quote, quote_plus

    from tradeos_pipelines.core.scrub import Scrubber

    scrub = Scrubber(["api-key-007"], basic=(USER, SECRET))
    pair = f"{USER}:{SECRET}"
    for form in (
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        base64.b64encode(pair.encode()).decode(),
        pair,
        "api-key-007",
    ):
        assert scrub(f"before {form} after") == "before *** after", form
    assert scrub("Authorization: Basic " + base64.b64encode(pair.encode()).decode()) == (
        "Authorization: Basic ***"
    )


def test_a_short_secret_is_not_masked_everywhere():
    from tradeos_pipelines.core.scrub import Scrubber

    scrub = Scrubber(["x", "abc"], basic=("u", "x"))
    assert scrub("xml box exists: abc") == "xml box exists: abc"
    assert Scrubber(["abcd"])("abcd abc") == "*** abc"


@pytest.fixture
def echoing_1c(emulator_factory, make_integration):
    """An integration whose 1C (basic auth) echoes the credentials it was sent."""
    server = emulator_factory(items=5, warehouses=1, api_key=None, basic=(USER, SECRET))
    make_integration("main-1c", base_url=server.base_url, username=USER, password=SECRET)
    return server


def _leaks(text: str) -> list[str]:
    import base64
    from urllib.parse import quote

    forms = [SECRET, quote(SECRET), base64.b64encode(f"{USER}:{SECRET}".encode()).decode()]
    return [form for form in forms if form in text]


def test_test_connection_scrubs_what_1c_echoes(api, echoing_1c):
    echoing_1c.control.inject_fault("echo_401", count=1, path="/health")
    refused = api.post("/integrations/main-1c/test-connection").json()
    assert refused["ok"] is False
    assert refused["error"] == (
        "1C 'main-1c' refused the credentials (401) for GET /health: Wrong password for ***"
    )
    echoing_1c.control.inject_fault("echo_version", count=1, path="/health")
    answered = api.post("/integrations/main-1c/test-connection").json()
    assert answered["ok"] is True
    assert answered["version"] == "11.5.19.100 (***)"


def test_a_failed_sync_stores_and_publishes_no_echoed_secret(api, echoing_1c, ws_connect, session):
    from sqlalchemy import select

    from tradeos_pipelines.engine import SyncFailed, sync_stock
    from tradeos_pipelines.storage.tables import IntegrationLog, SyncLog

    client = ws_connect("sync_updates")
    client.recv_type("welcome")
    echoing_1c.control.inject_fault("echo_401", count=5)
    with pytest.raises(SyncFailed) as failed:
        sync_stock("main-1c")
    expected = (
        "1C: 1C 'main-1c' refused the credentials (401) for GET /stock: Wrong password for ***"
    )
    # What Dagster keeps: the exception and the 1C error it was raised from.
    assert str(failed.value) == f"sync 1 failed: {expected}"
    assert str(failed.value.__cause__) == expected.removeprefix("1C: ")
    assert session.scalars(select(SyncLog.error)).one() == expected
    assert [e for e in session.scalars(select(IntegrationLog.error)) if e] == [
        "HTTP 401: Wrong password for ***"
    ]
    [_started, failed_event] = client.events(2)
    assert failed_event["type"] == "sync.failed"
    assert failed_event["data"]["error"] == expected
    api_view = api.get("/sync-logs").json()["data"][0]["error"]
    assert api_view == expected
    assert _leaks(str(failed_event) + api_view) == []


def test_the_breaker_stores_and_shows_no_echoed_secret(api, echoing_1c, redis_url):
    import redis

    from tradeos_pipelines.engine import SyncFailed, sync_stock
    from tradeos_pipelines.sources.common.breaker import breaker_key

    echoing_1c.control.inject_fault("echo_500", count=50)
    with pytest.raises(SyncFailed):
        sync_stock("main-1c")
    stored = redis.Redis.from_url(redis_url).hgetall(breaker_key("main-1c"))
    assert stored[b"last_error"].decode() == "HTTP 500: Ошибка сеанса ***"
    assert _leaks(str(stored)) == []
    breaker = api.get("/integrations/main-1c/health").json()["circuit"]
    assert breaker["last_error"] == "HTTP 500: Ошибка сеанса ***"


# ---- 4. revoking a token closes its open WebSockets (1008) on every process -----------------


def _close_frame(client, timeout: float) -> tuple[int, str]:
    """(code, reason) of the server's close frame, read within ``timeout`` seconds."""
    import struct

    import websocket

    client.ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        opcode, frame = client.ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode()
    raise AssertionError("no close frame")


def test_revoking_a_token_closes_its_sockets_on_every_process_within_a_second(
    sidecar, ws_connect, db, redis_url
):
    from tests.api.conftest import start_sidecar
    from tradeos_pipelines.storage.tokens import create_token, list_tokens, revoke_token

    token = create_token("wall-screen")
    other_process = start_sidecar()  # a second sidecar: its own runtime, relay and watcher
    try:
        doomed = [
            ws_connect("runs", token=token),
            ws_connect("runs", token=token, url=sidecar.api_ws_url),
            ws_connect("runs", token=token, url=other_process.ws_url),
        ]
        kept = ws_connect("runs")  # the admin token
        for client in [*doomed, kept]:
            assert client.recv_type("welcome")["type"] == "welcome"
        [info] = list_tokens()
        dropped_before = sidecar.runtime.manager.dropped_clients
        revoked_at = time.monotonic()
        revoke_token(info.id)
        for client in doomed:
            assert _close_frame(client, timeout=1.0) == (1008, "token revoked")
        assert time.monotonic() - revoked_at < 1.0
        kept.send({"type": "ping"})
        assert kept.recv_type("pong") == {"type": "pong"}
        # Closed for their token, not counted as slow clients.
        assert sidecar.runtime.manager.dropped_clients == dropped_before
    finally:
        other_process.stop()


# ---- 5. credentials bound to their endpoint; token scopes -----------------------------------

MOVED = (
    "required when base_url moves to another scheme, host, port or path: "
    "the stored credentials are only sent to the endpoint they were entered for"
)


@pytest.mark.parametrize(
    "new_url",
    [
        "http://attacker.example/trade",
        "https://1c.local/trade",
        "http://1c.local:8081/trade",
        "http://1c.local/other",
        "http://1c.local/trade/deeper",
    ],
)
def test_moving_base_url_without_the_api_key_is_422(api, make_integration, new_url):
    make_integration("main-1c", base_url="http://1c.local/trade", api_key="stored-key-123")
    response = api.patch("/integrations/main-1c", json={"base_url": new_url})
    assert response.status_code == 422
    assert _problems(response) == [("api_key", MOVED)]
    assert api.get("/integrations/main-1c").json()["base_url"] == "http://1c.local/trade"
    moved = api.patch("/integrations/main-1c", json={"base_url": new_url, "api_key": "new-key-456"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["base_url"] == new_url


def test_moving_a_basic_integration_names_both_credentials(api, make_integration):
    make_integration("main-1c", base_url="http://1c.local/trade", username="u", password="pass")
    response = api.patch("/integrations/main-1c", json={"base_url": "http://elsewhere/trade"})
    assert response.status_code == 422
    assert _problems(response) == [("username", MOVED), ("password", MOVED)]


def test_the_same_endpoint_spelled_differently_keeps_the_credentials(api, make_integration):
    make_integration("main-1c", base_url="http://1c.local/trade", api_key="stored-key-123")
    response = api.patch("/integrations/main-1c", json={"base_url": "HTTP://1C.LOCAL:80/trade/"})
    assert response.status_code == 200, response.text
    assert response.json()["base_url"] == "HTTP://1C.LOCAL:80/trade"


def _scoped(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_read_token_reads_but_cannot_change_anything(anonymous, make_integration):
    from tradeos_pipelines.storage.tokens import create_token

    make_integration("main-1c")
    token = create_token("wall-screen", scopes=["read"])
    auth = _scoped(token)
    assert anonymous.get("/api/v1/integrations", headers=auth).status_code == 200
    assert anonymous.get("/api/v1/integrations/main-1c/health", headers=auth).status_code == 200
    forbidden = "this token's scopes (read) do not include 'admin'"
    for method, path in [
        ("POST", "/api/v1/integrations"),
        ("PATCH", "/api/v1/integrations/main-1c"),
        ("DELETE", "/api/v1/integrations/main-1c"),
        ("POST", "/api/v1/integrations/main-1c/test-connection"),
        ("POST", "/api/v1/integrations/main-1c/sync"),
        ("POST", "/api/v1/conflicts/1/resolve"),
    ]:
        response = anonymous.request(method, path, headers=auth, json={})
        assert (response.status_code, response.json()) == (403, {"detail": forbidden}), path
    webhook = anonymous.post("/api/v1/webhooks/1c/main-1c", headers=auth, json={})
    assert webhook.json() == {
        "detail": "this token's scopes (read) do not include 'webhook:main-1c'"
    }


def test_a_webhook_token_can_only_call_its_integrations_webhook(anonymous, make_integration):
    from datetime import UTC, datetime

    from api.services.webhooks import sign
    from tradeos_pipelines.storage.tokens import create_token

    make_integration("main-1c", webhook_secret="webhook-secret-0123456789")
    make_integration("other-1c", webhook_secret="webhook-secret-0123456789")
    token = create_token("1c main", scopes=["webhook:main-1c"])
    body = orjson.dumps({"entities": ["stock"], "sent_at": datetime.now(UTC).isoformat()})
    headers = {
        **_scoped(token),
        "Content-Type": "application/json",
        "X-TradeOS-Signature": sign("webhook-secret-0123456789", body),
    }
    accepted = anonymous.post("/api/v1/webhooks/1c/main-1c", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    other = anonymous.post("/api/v1/webhooks/1c/other-1c", content=body, headers=headers)
    assert (other.status_code, other.json()) == (
        403,
        {"detail": "this token's scopes (webhook:main-1c) do not include 'webhook:other-1c'"},
    )
    listing = anonymous.get("/api/v1/integrations", headers=_scoped(token))
    assert (listing.status_code, listing.json()) == (
        403,
        {"detail": "this token's scopes (webhook:main-1c) do not include 'read'"},
    )


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["owner"], "unknown scope 'owner'; expected admin, read or webhook:<integration id>"),
        (
            ["webhook:"],
            "unknown scope 'webhook:'; expected admin, read or webhook:<integration id>",
        ),
        ([], "a token needs at least one scope: admin, read or webhook:<integration>"),
    ],
)
def test_unknown_scopes_are_refused(db, scopes, message):
    from tradeos_pipelines.storage.tokens import create_token

    with pytest.raises(ValueError) as refused:
        create_token("bad", scopes=scopes)
    assert str(refused.value) == message


def test_token_create_with_scope_on_the_command_line(db, capsys):
    from tradeos_pipelines.cli import main
    from tradeos_pipelines.storage.tokens import list_tokens

    assert main(["token", "create", "wall screen", "--scope", "read"]) == 0
    assert capsys.readouterr().out.strip().startswith("tos_")
    assert [(t.name, t.scopes) for t in list_tokens()] == [("wall screen", ("read",))]
    assert main(["token", "create", "x", "--scope", "root"]) == 2
    assert "unknown scope 'root'" in capsys.readouterr().err


# ---- 6. the browser: configuration from the sidecar, CSP and security headers ---------------


def test_config_tells_the_relay_and_dagster_addresses(api, sidecar):
    from tradeos_pipelines.core.settings import get_settings

    settings = get_settings()
    response = api.get("/config")
    assert response.status_code == 200
    assert response.json() == {
        "ws_url": f"ws://127.0.0.1:{settings.ws_port}/ws",
        "dagster_url": settings.dagster_url.rstrip("/"),
    }


def test_config_needs_a_token(anonymous):
    assert anonymous.get("/api/v1/config").status_code == 401


@pytest.mark.parametrize(
    "path", ["/dashboard/", "/api/v1/health", "/api/v1/integrations", "/docs", "/openapi.json"]
)
def test_every_response_carries_the_security_headers(anonymous, path):
    from tradeos_pipelines.core.settings import get_settings

    response = anonymous.get(path)
    ws_port = get_settings().ws_port
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://127.0.0.1:{ws_port}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def test_a_forged_host_cannot_inject_into_the_policy(anonymous):
    response = anonymous.get("/api/v1/health", headers={"Host": "evil; script-src *"})
    assert "connect-src 'self'; object-src" in response.headers["content-security-policy"]


def test_swagger_ui_is_served_from_local_files(anonymous):
    page = anonymous.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert '<script src="/dashboard/vendor/swagger-ui/swagger-ui-bundle.js"></script>' in page.text
    assert '<script src="/dashboard/docs.js"></script>' in page.text
    assert "<script>" not in page.text  # nothing inline: the CSP allows 'self' scripts only
    bundle = anonymous.get("/dashboard/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.content) > 1_000_000
    assert anonymous.get("/dashboard/docs.js").status_code == 200
    assert anonymous.get("/redoc").status_code == 404


def test_the_dashboard_takes_no_addresses_from_its_url():
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "api" / "dashboard" / "static"
    scripts = "".join(p.read_text() for p in static.rglob("*.js") if "vendor" not in p.parts)
    # The page's query is read once, for the deep link from Dagster to one operation (two
    # ids, used as filters); no address (relay, Dagster) ever comes from it.
    assert scripts.count("location.search") == 1
    assert set(re.findall(r"link\.(?:get|has)\(\"(\w+)\"\)", scripts)) == {
        "integration",
        "operation",
    }
    assert not re.search(r"(ws|dagster)[A-Za-z_]*\s*=\s*link\.", scripts)
    assert "connect-src 'self' ws: wss:" not in (static / "index.html").read_text()


# ---- 7. embedded servers: passwords, private files; the CLI finds the running stack ---------


def _mode(path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_postgres_needs_its_generated_password(tmp_path):
    import psycopg2

    from tradeos_pipelines.devstack.embedded import postgres_password_file, start_postgres_server

    server = start_postgres_server(tmp_path / "pg")
    try:
        password_file = postgres_password_file(tmp_path / "pg")
        password = password_file.read_text().strip()
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        assert len(password) == 32
        assert server.url == f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/postgres"
        assert _mode(password_file) == 0o600
        assert _mode(server.log_path) == 0o600
        assert _mode(tmp_path / "pg") == 0o700
        hba = (tmp_path / "pg" / "pg_hba.conf").read_text()
        assert "trust" not in hba.replace("# Written", "")
        with pytest.raises(psycopg2.OperationalError) as anonymous:
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        assert "no password supplied" in str(anonymous.value)
        with pytest.raises(psycopg2.OperationalError) as wrong:
            psycopg2.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", password="guess"
            )
        assert 'password authentication failed for user "postgres"' in str(wrong.value)
        psycopg2.connect(server.url.replace("+psycopg2", "")).close()
    finally:
        server.stop()
    again = start_postgres_server(tmp_path / "pg")  # the same password on the next start
    try:
        assert again.url.split("@")[0] == server.url.split("@")[0]
        psycopg2.connect(again.url.replace("+psycopg2", "")).close()
    finally:
        again.stop()


def test_embedded_redis_requires_its_generated_password(tmp_path):
    import redis

    from tradeos_pipelines.devstack.embedded import start_redis_server

    server = start_redis_server(tmp_path / "redis")
    try:
        password = (tmp_path / "redis" / "redis.password").read_text().strip()
        assert server.url.startswith(f"redis://:{password}@127.0.0.1:")
        for name in ("redis.password", "redis.conf", "redis.log"):
            assert _mode(tmp_path / "redis" / name) == 0o600, name
        assert _mode(tmp_path / "redis") == 0o700
        anonymous = redis.Redis.from_url(server.url.replace(f":{password}@", ""))
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.close()
    finally:
        server.stop()


def test_token_create_finds_the_running_dev_stacks_database(tmp_path, monkeypatch, db, capsys):
    from tradeos_pipelines.cli import main
    from tradeos_pipelines.core.settings import get_settings
    from tradeos_pipelines.devstack.bootstrap import DataDir, write_stack_env
    from tradeos_pipelines.storage.tokens import list_tokens

    data = DataDir(tmp_path)
    data.create()
    write_stack_env(data, {"TRADEOS_DATABASE_URL": db, "TRADEOS_REDIS_URL": "redis://x:1/0"})
    assert _mode(data.stack_env_file) == 0o600
    assert _mode(data.logs) == 0o700
    monkeypatch.setenv("TRADEOS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRADEOS_DATABASE_URL")
    monkeypatch.delenv("TRADEOS_REDIS_URL")
    get_settings.cache_clear()
    try:
        assert main(["token", "create", "from another terminal"]) == 0
        out, err = capsys.readouterr()
        assert out.strip().startswith("tos_")
        assert f"using the running dev stack's database ({tmp_path})" in err
    finally:
        get_settings.cache_clear()
    assert [t.name for t in list_tokens(database_url=db)] == ["from another terminal"]


# ---- 8. nothing published on all interfaces; no default secrets ------------------------------


def _compose() -> dict:
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())


def test_compose_publishes_ports_on_loopback_only():
    published = {
        name: [str(p) for p in service.get("ports", [])]
        for name, service in _compose()["services"].items()
        if service.get("ports")
    }
    assert published == {
        "mock-1c": ["127.0.0.1:8080:8080"],
        "dagster-webserver": ["127.0.0.1:3000:3000"],
        "sidecar": ["127.0.0.1:8000:8000", "127.0.0.1:8001:8001"],
    }


def test_compose_has_no_default_secrets():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w+):?-[^}]*\}", text)
    assert defaults == []
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {"POSTGRES_PASSWORD", "TRADEOS_SECRET_KEY", "MOCK_1C_API_KEY"}


# ---- 9. the OpenAPI document tells the truth: schemathesis against the live sidecar ----------

import schemathesis  # noqa: E402 - the section's own tool
from hypothesis import HealthCheck, settings  # noqa: E402


def _openapi_document() -> dict:
    # The document of the app the sidecar serves (it does not depend on settings); built at
    # import because schemathesis makes one test per operation at collection time.
    from tradeos_pipelines.core.settings import Settings

    return create_app(Settings(env="development")).openapi()


fuzzed = schemathesis.openapi.from_dict(_openapi_document())


@fuzzed.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_matches_its_openapi_document(case, sidecar, db, redis_url, admin_token):
    """No 5xx, no undocumented status, answers match their schemas, every schema-valid
    request accepted and every schema-violating one refused (bounded examples).

    Left out: ``allow_header_conformance`` (Starlette's 405 ``Allow`` lists the methods of the
    matched route only).
    """
    from schemathesis.specs.openapi.checks import allow_header_conformance

    case.call_and_validate(
        base_url=sidecar.base_url,
        headers={"Authorization": f"Bearer {admin_token}"},
        excluded_checks=[allow_header_conformance],
    )
