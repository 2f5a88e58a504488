"""The benchmark's raw WebSocket client reads what a real ``websockets`` server sends."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from bench._ws_client import HandshakeError, RawClient


def _event(event_id: str, *, sample: bool, pad: str = "") -> str:
    data = {"sent": time.time(), "sample": sample, "pad": pad}
    return orjson.dumps({"id": event_id, "channel": "runs", "data": data}).decode()


async def _script(ws: ServerConnection) -> None:
    await ws.send('{"type":"welcome","channels":["runs"]}')
    await ws.send(_event("1-0", sample=True))
    await ws.send(_event("2-0", sample=False, pad="я" * 300))  # 16-bit length
    await ws.send(_event("3-0", sample=True, pad="x" * 70_000))  # 64-bit length
    await ws.send(iter(['{"id":"4-0","data":{"sent":', str(time.time()), ',"sample":true}}']))
    await ws.send('{"type":"heartbeat","ts":1}')  # not an event
    await asyncio.wait_for(await ws.ping(b"abc"), 5)  # the client must answer
    await ws.close(1013, "client too slow")


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_counts_events_samples_pings_and_close(chunk: int | None) -> None:
    async with serve(_script, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        latencies: list[float] = []
        client = RawClient("127.0.0.1", port, "/ws", latencies)
        if chunk:  # reads split anywhere: inside headers, lengths and payloads
            whole = client.data_received
            client.data_received = (
                lambda data: [  # type: ignore[method-assign]
                    whole(data[i : i + chunk]) for i in range(0, len(data), chunk)
                ]
            )
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: client, "127.0.0.1", port)
        await asyncio.wait_for(client.welcomed, 5)
        await asyncio.wait_for(client.lost, 10)
    assert client.events == 4
    assert len(latencies) == 3
    assert all(0 <= ms < 5000 for ms in latencies)
    assert client.close_code == 1013
    assert client.error is None


async def test_refused_upgrade_is_a_handshake_error() -> None:
    async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(not_websocket, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        client = RawClient("127.0.0.1", port, "/elsewhere", [])
        await asyncio.get_running_loop().create_connection(lambda: client, "127.0.0.1", port)
        with pytest.raises(HandshakeError, match="expected 101"):
            await asyncio.wait_for(client.welcomed, 5)
