"""A fault-injecting TCP proxy for tests: it sits on loopback between a client and a server
and can cut, stall, slow or reorder the bytes of any one connection on command.

Each accepted connection becomes a `ProxiedConnection` with two `Pipe`s: `up` (client to
target) and `down` (target to client). A pipe reads one chunk, waits until it may deliver it,
writes it and waits for the writer to drain before reading the next, so the proxy never holds
more than `MAX_CHUNK * MAX_REORDER_WINDOW` bytes per direction: a stalled pipe pushes back on
its sender through TCP, as a slow network would.

Faults:

- `cut()`: abort both sockets (no close handshake, like a dropped link).
- `stall(direction)` / `resume(direction)`: stop and restart delivery; bytes already sent
  wait in the proxy and the kernel buffers behind it.
- `slow(bytes_per_second, direction)`: deliver in small slices at that rate.
- `reorder(window, direction)`: hold `window` chunks and deliver them last-first. On a framed
  protocol this garbles the stream; the peer must notice and recover.

Admission: `proxy.refuse_new(predicate)` cuts every new connection whose first bytes match
(for example WebSocket upgrades only, so REST still passes), until `proxy.admit_all()`.

Limits: loopback only; the client must speak first (as HTTP and WebSocket clients do), since
the proxy reads a connection's first bytes before it dials the target; at most
`max_connections` live connections; no TLS termination (bytes pass through untouched, so TLS
works end to end).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CHUNK = 64 * 1024
"""Largest read from either socket, and so the largest slice a pipe holds at once."""

MAX_REORDER_WINDOW = 16
"""Most chunks a reordering pipe holds back."""

REORDER_HOLD_SECONDS = 0.5
"""A reordering pipe that cannot fill its window releases what it holds after this long."""

SLOW_TICK_SECONDS = 0.02
"""A slowed pipe delivers one slice per tick."""


class Direction(enum.Flag):
    """Which way a fault applies: client to target (UP), target to client (DOWN) or both."""

    UP = enum.auto()
    DOWN = enum.auto()
    BOTH = UP | DOWN


@dataclass
class PipeStats:
    """What one pipe has done so far."""

    bytes_read: int = 0
    bytes_written: int = 0
    chunks_read: int = 0
    writes: int = 0
    reordered_batches: int = 0

    @property
    def pending(self) -> int:
        """Bytes read from the source and not yet written to the destination."""
        return self.bytes_read - self.bytes_written


@dataclass
class Pipe:
    """One direction of a proxied connection, with its own faults."""

    name: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    changed: asyncio.Condition
    stats: PipeStats = field(default_factory=PipeStats)
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    bytes_per_second: int | None = None
    reorder_window: int = 0
    _held: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.flowing.set()

    async def run(self) -> None:
        """Copy bytes until either side closes; faults apply to each chunk as it passes."""
        try:
            while True:
                chunk = await self._read()
                if chunk is None:
                    await self._release_held()
                    break
                if not chunk:
                    continue
                await self.flowing.wait()
                if self.reorder_window > 1:
                    self._held.append(chunk)
                    if len(self._held) >= self.reorder_window:
                        await self._release_held()
                else:
                    await self._release_held()
                    await self._deliver(chunk)
            with contextlib.suppress(OSError, RuntimeError):
                if self.writer.can_write_eof():
                    self.writer.write_eof()
        except (ConnectionError, OSError):
            return

    async def _read(self) -> bytes | None:
        """The next chunk, b"" when a held reorder batch timed out, None at end of stream."""
        if self._held:
            try:
                chunk = await asyncio.wait_for(
                    self.reader.read(MAX_CHUNK), timeout=REORDER_HOLD_SECONDS
                )
            except TimeoutError:
                await self._release_held()
                return b""
        else:
            chunk = await self.reader.read(MAX_CHUNK)
        if not chunk:
            return None
        await self._count(read=len(chunk))
        return chunk

    async def _release_held(self) -> None:
        if not self._held:
            return
        batch, self._held = self._held, []
        if len(batch) > 1:
            self.stats.reordered_batches += 1
        for chunk in reversed(batch):
            await self._deliver(chunk)

    async def _deliver(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            await self.flowing.wait()
            rate = self.bytes_per_second
            if rate is None:
                piece, view = view, view[len(view) :]
            else:
                size = max(1, int(rate * SLOW_TICK_SECONDS))
                piece, view = view[:size], view[size:]
                await asyncio.sleep(SLOW_TICK_SECONDS)
            self.writer.write(piece)
            await self.writer.drain()
            await self._count(written=len(piece))

    async def _count(self, read: int = 0, written: int = 0) -> None:
        async with self.changed:
            if read:
                self.stats.bytes_read += read
                self.stats.chunks_read += 1
            if written:
                self.stats.bytes_written += written
                self.stats.writes += 1
            self.changed.notify_all()


class ProxiedConnection:
    """One client connection through the proxy and the faults that can be applied to it."""

    def __init__(
        self,
        number: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        first_bytes: bytes,
    ) -> None:
        self.number = number
        self.first_bytes = first_bytes
        """What the client sent first (up to one chunk): tells a WebSocket upgrade from REST."""
        self.changed = asyncio.Condition()
        self.up = Pipe("up", client[0], target[1], self.changed)
        self.down = Pipe("down", target[0], client[1], self.changed)
        self._writers = (client[1], target[1])
        self.closed = asyncio.Event()
        self.was_cut = False

    def _pipes(self, direction: Direction) -> list[Pipe]:
        pipes = []
        if Direction.UP in direction:
            pipes.append(self.up)
        if Direction.DOWN in direction:
            pipes.append(self.down)
        return pipes

    def cut(self) -> None:
        """Abort both sockets at once, as a lost link would; no close frame, no FIN."""
        self.was_cut = True
        for writer in self._writers:
            writer.transport.abort()

    def stall(self, direction: Direction = Direction.BOTH) -> None:
        """Stop delivering in `direction`; the senders back up against TCP."""
        for pipe in self._pipes(direction):
            pipe.flowing.clear()

    def resume(self, direction: Direction = Direction.BOTH) -> None:
        """Deliver again in `direction`, starting with what was held."""
        for pipe in self._pipes(direction):
            pipe.flowing.set()

    def slow(self, bytes_per_second: int | None, direction: Direction = Direction.BOTH) -> None:
        """Deliver at most `bytes_per_second` in `direction`; None removes the limit."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("a rate must be positive")
        for pipe in self._pipes(direction):
            pipe.bytes_per_second = bytes_per_second

    def reorder(self, window: int, direction: Direction = Direction.BOTH) -> None:
        """Deliver each `window` chunks last-first in `direction`; 0 or 1 turns it off."""
        if not 0 <= window <= MAX_REORDER_WINDOW:
            raise ValueError(f"a reorder window is 0..{MAX_REORDER_WINDOW}")
        for pipe in self._pipes(direction):
            pipe.reorder_window = window

    def heal(self) -> None:
        """Remove every fault: deliver in order, at full speed, both ways."""
        self.reorder(0)
        self.slow(None)
        self.resume()

    async def wait(self, condition: Callable[[], bool], seconds: float = 5.0) -> None:
        """Wait until `condition()` holds; it is checked whenever a pipe moves bytes."""

        async def _until() -> None:
            async with self.changed:
                await self.changed.wait_for(condition)

        await asyncio.wait_for(_until(), seconds)

    async def run(self) -> None:
        try:
            await asyncio.gather(self.up.run(), self.down.run())
        finally:
            for writer in self._writers:
                writer.transport.abort()
            self.closed.set()


AdmissionRule = Callable[[bytes], bool]
"""Given a new connection's first bytes, True to refuse (cut) it."""


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of `target_host:target_port`.

    Use as `async with FaultProxy(host, port) as proxy:` and point clients at `proxy.port`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        max_connections: int = 2048,
        target_rcvbuf: int | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.max_connections = max_connections
        self.target_rcvbuf = target_rcvbuf
        """Kernel receive buffer of the proxy's sockets to the target, when set: a small one
        makes a stalled connection push back on the target after a few kilobytes, instead of
        after the megabytes loopback buffers otherwise absorb."""
        self.connections: list[ProxiedConnection] = []
        """Every connection accepted, in order, open or closed."""
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._refuse: AdmissionRule | None = None
        self._accepted = asyncio.Condition()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> list[ProxiedConnection]:
        """Connections still open."""
        return [c for c in self.connections if not c.closed.is_set()]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Stop accepting, abort every connection and wait for their tasks to end."""
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            conn.cut()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def refuse_new(self, rule: AdmissionRule | None = None) -> None:
        """Cut new connections whose first bytes match `rule` (every new one if None)."""
        self._refuse = rule if rule is not None else (lambda _first: True)

    def admit_all(self) -> None:
        """Accept new connections again."""
        self._refuse = None

    def cut_all(self) -> None:
        for conn in self.live:
            conn.cut()

    async def wait_for_connections(self, count: int, seconds: float = 5.0) -> None:
        """Wait until at least `count` connections have been accepted in total."""

        async def _until() -> None:
            async with self._accepted:
                await self._accepted.wait_for(lambda: len(self.connections) >= count)

        await asyncio.wait_for(_until(), seconds)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.live) >= self.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            first = await reader.read(MAX_CHUNK)
        except (ConnectionError, OSError):
            writer.transport.abort()
            return
        if not first or (self._refuse is not None and self._refuse(first)):
            self.refused += 1
            writer.transport.abort()
            return
        try:
            target = await self._dial()
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        target[1].write(first)
        conn = ProxiedConnection(len(self.connections), (reader, writer), target, first)
        conn.up.stats.bytes_read = conn.up.stats.bytes_written = len(first)
        async with self._accepted:
            self.connections.append(conn)
            self._accepted.notify_all()
        await conn.run()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_rcvbuf is None:
            return await asyncio.open_connection(self.target_host, self.target_port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.target_rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                sock, (self.target_host, self.target_port)
            )
        except OSError:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=MAX_CHUNK)


def is_websocket_upgrade(first_bytes: bytes) -> bool:
    """An admission rule: true for an HTTP request to /ws (a WebSocket upgrade)."""
    return first_bytes.startswith(b"GET /ws")
