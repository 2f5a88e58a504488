"""The WebSocket relay: protocol, channels, resume, slow clients, Cyrillic, both ports."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import redis
import websocket

from tradeos_pipelines.event_bus import RedisEventBus


@pytest.fixture
def bus(redis_client: redis.Redis) -> RedisEventBus:
    return RedisEventBus(redis_client)


def close_code(client, timeout: float = 10.0) -> int:
    """Read until the server's close frame; its status code."""
    client.ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        opcode, frame = client.ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]
    raise AssertionError("no close frame")


def test_seed_example_get_stats_with_websocket_client(ws_connect, admin_token, sidecar):
    # The seed's example, verbatim in spirit: connect with a token, ask for stats, read them.
    ws = websocket.create_connection(f"{sidecar.ws_url}?token={admin_token}", timeout=10)
    try:
        welcome = __import__("json").loads(ws.recv())
        assert welcome["type"] == "welcome"
        ws.send('{"type": "get_stats"}')
        answer = __import__("json").loads(ws.recv())
        while answer["type"] != "stats":
            answer = __import__("json").loads(ws.recv())
        assert set(answer["data"]["channels"]) >= {"sync_updates", "runs", "alerts"}
        for key in ("events_relayed", "dropped_clients"):
            assert key in answer["data"]
        # One more client is counted as exactly one more connection.
        other = ws_connect("runs")
        other.recv_type("welcome")
        ws.send('{"type": "get_stats"}')
        again = __import__("json").loads(ws.recv())
        while again["type"] != "stats":
            again = __import__("json").loads(ws.recv())
        assert again["data"]["connections"] == answer["data"]["connections"] + 1
    finally:
        ws.close()


def test_welcome_lists_channels_and_ping_pong(ws_connect):
    client = ws_connect("sync_updates,runs")
    assert client.recv() == {"type": "welcome", "channels": ["runs", "sync_updates"]}
    client.send({"type": "ping"})
    assert client.recv_type("pong")["type"] == "pong"


@pytest.mark.parametrize("token", ["", "wrong-token"], ids=["missing", "wrong"])
def test_bad_token_closes_with_1008(ws_connect, token):
    client = ws_connect("runs", token=token)
    assert close_code(client) == 1008


UNKNOWN_TYPE = "unknown message type {!r}; expected subscribe, unsubscribe, get_stats or ping"
NOT_AN_OBJECT = 'message must be a JSON object with a "type"'
NOT_CHANNELS = "unknown channel(s) channels must be a list of channel names; expected one of "


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "message is not valid JSON"),
        ('{"type": NaN}', "message is not valid JSON"),
        ("[" * 2000 + "]" * 2000, "message is not valid JSON"),  # deeper than orjson reads
        ("[1, 2]", NOT_AN_OBJECT),
        ('"ping"', NOT_AN_OBJECT),
        ('{"no": "type"}', NOT_AN_OBJECT),
        ('{"type": 5}', NOT_AN_OBJECT),
        ('{"type": null}', NOT_AN_OBJECT),
        ('{"type": "dance"}', UNKNOWN_TYPE.format("dance")),
        ('{"type": "PING"}', UNKNOWN_TYPE.format("PING")),
        ('{"type": "subscribe"}', 'subscribe needs "channels": a list of channel names'),
        ('{"type": "unsubscribe"}', 'unsubscribe needs "channels": a list of channel names'),
        ('{"type": "subscribe", "channels": null}', NOT_CHANNELS),
        ('{"type": "subscribe", "channels": 7}', NOT_CHANNELS),
        ('{"type": "subscribe", "channels": [1, "runs"]}', NOT_CHANNELS),
        ('{"type": "subscribe", "channels": {"runs": true}}', NOT_CHANNELS),
        (
            '{"type": "subscribe", "channels": ["nope"]}',
            "unknown channel(s) nope; expected one of ",
        ),
    ],
)
def test_each_malformed_field_gets_its_error_and_the_socket_stays_open(ws_connect, message, error):
    from tradeos_pipelines.event_bus import CHANNELS

    client = ws_connect("runs")
    client.recv_type("welcome")
    client.send(message)
    expected = error + ", ".join(CHANNELS) if error.endswith("expected one of ") else error
    assert client.recv() == {"type": "error", "error": expected}
    # Nothing about the connection changed: still subscribed to exactly what it asked for.
    client.send({"type": "subscribe", "channels": []})
    assert client.recv() == {"type": "subscribed", "channels": ["runs"]}


def test_a_binary_frame_gets_an_error_and_the_socket_stays_open(ws_connect):
    client = ws_connect("runs")
    client.recv_type("welcome")
    client.ws.send_binary(b"\x00\x01")
    assert client.recv() == {"type": "error", "error": "send JSON text frames, not binary"}
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}


def test_unknown_channel_in_query_is_reported(ws_connect):
    client = ws_connect("runs,bogus")
    assert client.recv()["channels"] == ["runs"]
    assert "bogus" in client.recv_type("error")["error"]


def test_clients_on_different_channels_get_exactly_their_events(ws_connect, bus):
    runs = ws_connect("runs")
    stock = ws_connect("stock_updates")
    both = ws_connect("runs,stock_updates")
    for c in (runs, stock, both):
        c.recv_type("welcome")
    sent = []
    for i in range(5):
        sent.append(bus.publish("runs", "run.started", {"i": i}))
        sent.append(bus.publish("stock_updates", "stock.updated", {"i": i}))
        bus.publish("alerts", "alert", {"i": i})  # nobody here listens to alerts
    got_runs = runs.events(5)
    got_stock = stock.events(5)
    got_both = both.events(10)
    assert [e["channel"] for e in got_runs] == ["runs"] * 5
    assert [e["channel"] for e in got_stock] == ["stock_updates"] * 5
    # Order is guaranteed per channel (one stream each); across channels ids sort them.
    assert sorted((e["id"] for e in got_both), key=lambda i: tuple(map(int, i.split("-")))) == sent
    for channel in ("runs", "stock_updates"):
        per_channel = [e["data"]["i"] for e in got_both if e["channel"] == channel]
        assert per_channel == list(range(5))
    assert [e["data"]["i"] for e in got_runs] == list(range(5))
    # Nothing else arrives (a sentinel on each channel comes next, not an alert).
    marker = bus.publish("runs", "run.succeeded", {"last": True})
    assert runs.events(1)[0]["id"] == marker


def test_subscribe_and_unsubscribe(ws_connect, bus):
    client = ws_connect("runs")
    client.recv_type("welcome")
    client.send({"type": "subscribe", "channels": ["alerts"]})
    assert client.recv_type("subscribed")["channels"] == ["alerts", "runs"]
    client.send({"type": "unsubscribe", "channels": ["runs"]})
    assert client.recv_type("subscribed")["channels"] == ["alerts"]
    bus.publish("runs", "run.started", {"skip": True})
    alert = bus.publish("alerts", "alert", {"message": "1C недоступна"})
    assert client.events(1)[0]["id"] == alert


def test_event_wire_format_and_cyrillic_intact(ws_connect, bus):
    client = ws_connect("product_updates")
    client.recv_type("welcome")
    data = {"integration_id": "main-1c", "name": "Молоко «Домик в деревне» 3,2%", "unit": "шт"}
    event_id = bus.publish("product_updates", "product.updated", data)
    client.ws.settimeout(5)
    raw = client.ws.recv()
    while '"id"' not in raw:
        raw = client.ws.recv()
    assert "Молоко «Домик в деревне» 3,2%" in raw  # UTF-8 as is, no \\u escapes
    event = __import__("orjson").loads(raw)
    assert event["id"] == event_id and event["channel"] == "product_updates"
    assert event["type"] == "product.updated" and event["data"] == data
    assert event["ts"].endswith("Z")


def test_resume_with_last_event_id_loses_nothing_and_duplicates_nothing(ws_connect, bus):
    first = ws_connect("sync_updates,runs")
    first.recv_type("welcome")
    seen = [bus.publish("sync_updates", "sync.progress", {"n": 0})]
    assert first.events(1)[0]["id"] == seen[0]
    first.close()
    missed = [
        bus.publish("sync_updates" if n % 2 else "runs", "sync.progress", {"n": n})
        for n in range(1, 6)
    ]
    bus.publish("alerts", "alert", {"not": "subscribed"})
    second = ws_connect("sync_updates,runs", last_event_id=seen[0])
    second.recv_type("welcome")
    live = bus.publish("runs", "run.started", {"n": 6})
    got = second.events(6)
    # Replay comes in id order, then live events.
    assert [e["id"] for e in got] == [*missed, live]
    second.send({"type": "ping"})
    # No duplicate before the pong: every message up to it is read (none skipped unseen), and
    # none of them is an event already delivered. (A live event of another test's Dagster run
    # on "runs" may arrive meanwhile: new, so not a duplicate.)
    before_pong = second.until("pong")
    delivered = {*seen, *missed, live}
    assert [m["id"] for m in before_pong if m.get("id") in delivered] == []
    assert before_pong[-1]["type"] == "pong"


@pytest.mark.parametrize(
    ("last_event_id", "shown"),
    [
        ("yesterday", "'yesterday'"),
        ("1-2-3", "'1-2-3'"),
        ("²", "'²'"),
        ("18446744073709551616-0", "'18446744073709551616-0'"),  # 2**64: no Redis id
        ("9" * 5000, repr("9" * 60)),  # past int()'s digit limit: cut, never a crash
    ],
)
def test_a_bad_last_event_id_is_an_error_frame(ws_connect, last_event_id, shown):
    client = ws_connect("runs", last_event_id=last_event_id)
    assert client.recv() == {"type": "welcome", "channels": ["runs"]}
    assert client.recv() == {
        "type": "error",
        "error": f"last_event_id {shown} is not an event id like 1732700000000-0",
    }
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}


def test_main_port_serves_ws_too(ws_connect, sidecar, bus):
    client = ws_connect("alerts", url=sidecar.api_ws_url)
    client.recv_type("welcome")
    event_id = bus.publish("alerts", "alert", {"x": 1})
    assert client.events(1)[0]["id"] == event_id


def test_slow_client_is_dropped_with_1013_while_fast_one_keeps_receiving(ws_connect, bus, sidecar):
    # A tiny receive buffer and no reading: the server's send queue fills up.
    slow = ws_connect("stock_updates", sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = ws_connect("stock_updates")
    fast.recv_type("welcome")
    manager = sidecar.runtime.manager
    dropped_before = manager.dropped_clients
    payload = "x" * 8000
    ids: list[str] = []
    received: list[str] = []
    # Publish in batches, the fast client reading each batch, until the slow one is dropped
    # (how many it takes depends on the kernel's socket buffers).
    while manager.dropped_clients == dropped_before and len(ids) < 40_000:
        for _ in range(200):
            ids.append(bus.publish("stock_updates", "stock.updated", {"pad": payload}))
        received.extend(e["id"] for e in fast.events(len(ids) - len(received), timeout=30))
    assert received == ids
    assert manager.dropped_clients == dropped_before + 1
    assert close_code(slow, timeout=60) == 1013
    stats_client = ws_connect("runs")
    stats_client.send({"type": "get_stats"})
    stats = stats_client.recv_type("stats")["data"]
    assert stats["dropped_clients"] == manager.dropped_clients == dropped_before + 1


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ("sync_updates", "sync.finished"),
        ("sync_updates", "sync.failed"),
        ("integration_status", "integration.status"),
        ("integration_status", "integration.changed"),
        ("runs", "run.succeeded"),
    ],
)
def test_sync_end_and_status_events_clear_cached_health_and_stats(
    ws_connect, bus, redis_client, channel, kind
):
    from tradeos_pipelines.core.settings import get_settings

    namespace = get_settings().redis_namespace
    health_key = f"{namespace}:integration-health:main-1c"
    other_health = f"{namespace}:integration-health:other"
    stats_key = f"{namespace}:stats-cache:stats:24h:None:None"
    for key in (health_key, other_health, stats_key):
        redis_client.set(key, "{}", ex=60)
    client = ws_connect(channel)
    client.recv_type("welcome")
    bus.publish(channel, kind, {"integration_id": "main-1c", "entity": "stock"})
    client.events(1)  # relayed, so the relay has seen it
    deadline = time.monotonic() + 5
    while redis_client.exists(health_key, stats_key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client.exists(health_key, stats_key) == 0
    assert redis_client.exists(other_health) == 1  # another integration's health stays


def test_a_changed_integration_is_announced(api, ws_connect):
    """A dashboard must not keep showing the old base_url after a PATCH through the API."""
    client = ws_connect("integration_status")
    client.recv_type("welcome")
    created = api.post(
        "/integrations",
        json={
            "id": "main-1c",
            "name": "1С",
            "base_url": "http://1c.example/trade",
            "auth_type": "api_key",
            "api_key": "k" * 16,
        },
    )
    assert created.status_code == 201, created.text
    assert (
        api.patch(
            "/integrations/main-1c",
            json={"base_url": "http://1c-new.example/trade", "api_key": "n" * 16},
        ).status_code
        == 200
    )
    assert api.post("/integrations/main-1c/disable").status_code == 200
    assert api.delete("/integrations/main-1c").status_code == 204
    events = client.events(4)
    assert [(e["type"], e["data"]) for e in events] == [
        ("integration.changed", {"integration_id": "main-1c", "change": change})
        for change in ("created", "updated", "disabled", "deleted")
    ]
