"""Acceptance 6: a client that never reads is closed, the others get every event, and the
server's unsent data stays bounded. Also: a peer silent past the ping timeout is closed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from ginie_protocol.events import LifecycleEvent
from ginie_server.config import Limits
from tests.harness import ScriptedSource, connect_client, running_server, wait_for

BOUND = 1024 * 1024
EVENTS = 10_000
CHUNK = 200


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (clients must mask)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


def open_stalled_socket(url: str, token: str, subscribe: bool = True) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that will never read a byte."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    if subscribe:
        request += masked_text_frame(json.dumps({"op": "subscribe", "topics": ["*"]}).encode())
    sock.sendall(request)
    return sock


def drain_until_closed(sock: socket.socket) -> bool:
    """Read what the server sent; True once the server closed or reset the connection."""
    sock.settimeout(10)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def event(n: int) -> LifecycleEvent:
    return LifecycleEvent(
        id=n, chain_id="c", symbol="BTCUSDT", step="entry", message="x" * 1000, time=n
    )


async def test_a_stalled_reader_is_closed_and_the_normal_client_gets_everything(
    tmp_path: Path,
) -> None:
    source = ScriptedSource()
    limits = Limits(max_buffer_bytes=BOUND)
    async with running_server(tmp_path, sources=[source], limits=limits) as server:
        hub = server.hub
        stalled = open_stalled_socket(server.url, server.token)
        try:
            await wait_for(lambda: hub.subscriber_count("demo") == 1)
            received: list[Any] = []
            async with connect_client(server.ws_url, server.token) as client:
                await client.subscribe(["LIFECYCLE_EVENT"])

                async def read() -> None:
                    while True:
                        received.extend(await client.user_events(1, timeout=30))

                reader = asyncio.create_task(read())
                most_buffered = 0
                for n in range(1, EVENTS + 1):
                    source.emit("demo", event(n))
                    if n % CHUNK == 0:
                        hub.flush()
                        most_buffered = max(most_buffered, hub.buffered_bytes())
                        await wait_for(lambda n=n: len(received) >= n - CHUNK, 10)
                await wait_for(lambda: len(received) == EVENTS, 15)
                reader.cancel()
            assert [e.seq for e in received] == list(range(1, EVENTS + 1))
            assert hub.metrics("demo").slow_consumer_closes == 1
            assert most_buffered <= 2 * BOUND
            assert await asyncio.to_thread(drain_until_closed, stalled)
            await wait_for(lambda: hub.connection_count("demo") == 0)
            assert hub.buffered_bytes() == 0
        finally:
            stalled.close()


async def test_a_peer_that_never_answers_pings_is_closed(tmp_path: Path) -> None:
    limits = Limits(ping_interval=0.1, ping_timeout=0.2, close_timeout=0.5)
    async with running_server(tmp_path, sources=[], limits=limits) as server:
        silent = open_stalled_socket(server.url, server.token, subscribe=False)
        try:
            await wait_for(lambda: server.hub.connection_count("demo") == 1)
            await wait_for(lambda: server.hub.connection_count("demo") == 0, timeout=5)
            assert await asyncio.to_thread(drain_until_closed, silent)
        finally:
            silent.close()
