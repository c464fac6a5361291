"""The fault proxy itself, against a toy echo server: it passes bytes, and cuts, stalls,
slows and reorders them on command, holding a bounded amount while it does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.faults.proxy import (
    MAX_CHUNK,
    SLOW_TICK_SECONDS,
    Direction,
    FaultProxy,
    ProxiedConnection,
    is_websocket_upgrade,
)


class EchoServer:
    """Echoes every byte back and counts what it received."""

    def __init__(self) -> None:
        self.received = 0
        self.finished = 0
        self.changed = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def until(self, condition: Callable[[], bool], seconds: float = 5.0) -> None:
        async def _wait() -> None:
            async with self.changed:
                await self.changed.wait_for(condition)

        await asyncio.wait_for(_wait(), seconds)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(MAX_CHUNK):
                async with self.changed:
                    self.received += len(data)
                    self.changed.notify_all()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()
            async with self.changed:
                self.finished += 1
                self.changed.notify_all()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port) as fault_proxy:
        yield fault_proxy


async def open_through(
    proxy: FaultProxy,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ProxiedConnection]:
    """Connect through the proxy and exchange a first greeting so the connection is set up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"hi")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"hi"
    return reader, writer, proxy.connections[-1]


async def test_bytes_pass_unchanged_both_ways(proxy: FaultProxy) -> None:
    reader, writer, conn = await open_through(proxy)
    payload = bytes(range(256)) * 1000
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    assert conn.down.stats.bytes_written == len(payload) + 2
    writer.close()


async def test_cut_aborts_both_sides(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer, conn = await open_through(proxy)
    conn.cut()
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(10), 5) == b""
    await echo.until(lambda: echo.finished == 1)
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert conn.was_cut
    assert proxy.live == []
    writer.close()


async def test_stall_holds_delivery_until_resume(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer, conn = await open_through(proxy)
    conn.stall(Direction.DOWN)
    writer.write(b"ping")
    await echo.until(lambda: echo.received == 6)
    await conn.wait(lambda: conn.down.stats.bytes_read == 6)
    assert conn.down.stats.pending == 4
    assert conn.down.stats.bytes_written == 2
    conn.resume(Direction.DOWN)
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    writer.close()


async def test_stalled_sender_is_pushed_back_and_the_proxy_holds_one_chunk(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    reader, writer, conn = await open_through(proxy)
    conn.stall(Direction.DOWN)
    total = 32 * 1024 * 1024
    payload = b"x" * total
    writer.write(payload)
    await conn.wait(lambda: conn.down.stats.pending > 0)
    # With delivery stalled, the echo server can only have sent what the kernel buffers
    # between it and the proxy hold: far less than 32 MiB.
    assert echo.received < total + 2
    assert conn.down.stats.pending <= MAX_CHUNK

    conn.resume(Direction.DOWN)
    echoed = await asyncio.wait_for(reader.readexactly(total), 30)
    assert echoed == payload
    assert echo.received == total + 2
    writer.close()


async def test_slow_delivers_in_slices_at_the_rate(proxy: FaultProxy) -> None:
    reader, writer, conn = await open_through(proxy)
    rate = 32 * 1024
    conn.slow(rate, Direction.DOWN)
    payload = bytes(range(256)) * 16
    writes_before = conn.down.stats.writes
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    slices = conn.down.stats.writes - writes_before
    slice_size = int(rate * SLOW_TICK_SECONDS)
    assert slices >= len(payload) // slice_size
    assert loop.time() - started >= (slices - 1) * SLOW_TICK_SECONDS
    conn.slow(None)
    writer.write(b"fast")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"fast"
    writer.close()


async def test_reorder_delivers_a_window_last_first(proxy: FaultProxy) -> None:
    reader, writer, conn = await open_through(proxy)
    conn.reorder(2, Direction.UP)
    writer.write(b"first")
    await conn.wait(lambda: conn.up.stats.chunks_read == 1)
    writer.write(b"second")
    assert await asyncio.wait_for(reader.readexactly(11), 5) == b"secondfirst"
    assert conn.up.stats.reordered_batches == 1
    writer.close()


async def test_reorder_releases_a_partial_window_after_its_hold_time(proxy: FaultProxy) -> None:
    reader, writer, conn = await open_through(proxy)
    conn.reorder(4, Direction.UP)
    writer.write(b"alone")
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"alone"
    conn.heal()
    writer.write(b"again")
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"again"
    writer.close()


async def test_refuse_new_cuts_only_matching_connections(proxy: FaultProxy) -> None:
    proxy.refuse_new(is_websocket_upgrade)
    ws_reader, ws_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    ws_writer.write(b"GET /ws HTTP/1.1\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(ws_reader.read(10), 5) == b""
    assert proxy.refused == 1

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /api/health HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"GET "

    proxy.admit_all()
    _r, _w, conn = await open_through(proxy)
    assert conn.number == 1
    for w in (ws_writer, writer, _w):
        w.close()


async def test_connections_beyond_the_limit_are_refused(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, max_connections=2) as proxy:
        first = await open_through(proxy)
        second = await open_through(proxy)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hi")
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(10), 5) == b""
        assert proxy.refused == 1
        assert len(proxy.live) == 2
        for _r, w, _c in (first, second):
            w.close()
        writer.close()


async def test_stop_ends_every_connection(echo: EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.port)
    await proxy.start()
    conns = [await open_through(proxy) for _ in range(3)]
    conns[0][2].stall()
    await proxy.stop()
    assert all(c.closed.is_set() for _r, _w, c in conns)
    await echo.until(lambda: echo.finished == 3)
    for _r, w, _c in conns:
        w.close()
