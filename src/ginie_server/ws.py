"""The WebSocket door: one reader and one sender per connection, between a socket and the hub.

`WsConnection` is the hub's `Connection` for a websockets `ServerConnection`. `send_frame`
and `send_frames` write straight to the socket while its write buffer is below
`WRITE_HIGH_WATER`, a whole batch in one write; past that, frames wait in the connection's
queue and its sender task writes them as the socket drains. `buffered_bytes` counts both, which
is what the hub's slow-consumer guard bounds. There is no other backpressure: the hub never
waits for a socket.

The direct writes frame the text themselves (`text_frame_header`): a server frame is unmasked
and this server negotiates no extension (no compression), so a text frame is a 2, 4 or 10
byte header and the payload, exactly what websockets' protocol would write, at a fraction of
its cost per delivery. Only an open connection is written to; a connection that negotiated an
extension, the queue, pings and the closing handshake go through websockets.

The reader decodes each client frame: `subscribe` goes to the hub, `command` to its handler
(answered by exactly one ACK). A frame that does not fit the protocol is answered with ERROR
`bad_request` and counts against the connection's error budget; past it the connection is
closed with 1008. Oversized frames are closed with 1009 by websockets itself (`max_size`).
Commands also spend from the connection's `CommandBucket`: one over it is answered `ok: false`,
code `rate_limited`, with the time to retry, and is not run; past `command_flood_limit` such
refusals within the error window the connection is closed with 1008 too. After each frame
the reader yields to the event loop, so a connection with many frames already buffered takes
turns with everyone else's events instead of holding the loop until it has read them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ginie_protocol.commands import CommandArgsError, parse_command_args
from ginie_protocol.envelope import (
    Ack,
    AckError,
    Command,
    Error,
    ProtocolError,
    Subscribe,
    decode_client,
    encode,
)
from ginie_server.config import Limits
from ginie_server.hub import Hub, SubscriptionError
from ginie_server.sources import CommandError, CommandHandler

log = logging.getLogger(__name__)

WRITE_HIGH_WATER = 64 * 1024
"""Socket write-buffer size above which frames queue in the connection instead."""

CLOSE_POLICY_VIOLATION = 1008


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, unfragmented text frame with a payload of `length` bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


class WsConnection:
    """A hub `Connection` over one WebSocket: direct writes, a queue, and a sender task."""

    def __init__(self, ws: ServerConnection, close_timeout: float) -> None:
        self._ws = ws
        self._transport = ws.transport
        self._protocol = ws.protocol
        self._raw = not ws.protocol.extensions
        """Whether frames may be written without the protocol (no extension to apply)."""
        self._close_timeout = close_timeout
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._closer: asyncio.Task[None] | None = None

    def send_frame(self, frame: bytes) -> None:
        if not self._open():
            return
        if self._queue or self._transport.get_write_buffer_size() >= WRITE_HIGH_WATER:
            self._enqueue(frame)
        elif self._raw:
            self._transport.write(text_frame_header(len(frame)) + frame)
        else:
            broadcast([self._ws], frame, text=True)

    def send_frames(self, frames: list[bytes]) -> None:
        if not self._open():
            return
        if self._queue or self._transport.get_write_buffer_size() >= WRITE_HIGH_WATER:
            for frame in frames:
                self._enqueue(frame)
        elif self._raw:
            parts: list[bytes] = []
            for frame in frames:
                parts.append(text_frame_header(len(frame)))
                parts.append(frame)
            self._transport.write(b"".join(parts))
        else:
            for frame in frames:
                self._protocol.send_text(frame)
            self._transport.write(b"".join(self._protocol.data_to_send()))

    def _open(self) -> bool:
        """Whether frames may still be sent. A closing connection takes none: its client
        resumes from its last `seq`."""
        return not self._closing and self._protocol.state is State.OPEN

    def _enqueue(self, frame: bytes) -> None:
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wake.set()

    def buffered_bytes(self) -> int:
        return self._queued_bytes + self._transport.get_write_buffer_size()

    def close(self, code: int, reason: str) -> None:
        """Drop the queue; send a close frame if it can get through, else abort the socket."""
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        self._wake.set()
        if self._ws.transport.get_write_buffer_size() < WRITE_HIGH_WATER:
            self._closer = asyncio.create_task(self._close_or_abort(code, reason))
        else:
            self._ws.transport.abort()

    async def run_sender(self) -> None:
        """Write queued frames as the socket drains; ends when the connection closes."""
        try:
            while not self._closing:
                await self._wake.wait()
                self._wake.clear()
                while self._queue and not self._closing:
                    frame = self._queue.popleft()
                    self._queued_bytes -= len(frame)
                    await self._ws.send(frame, text=True)
        except ConnectionClosed:
            return

    async def _close_or_abort(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._ws.close(code, reason)
        except TimeoutError:
            self._ws.transport.abort()


class ErrorBudget:
    """Counts a connection's bad frames, or its refused commands, over a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._times: deque[float] = deque()

    def spend(self, now: float) -> bool:
        """Record one error at `now`; False once more than `limit` fall within the window."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self._window:
            self._times.popleft()
        return len(self._times) <= self._limit


class CommandBucket:
    """A token bucket of commands: `burst` at once, refilled at `rate` a second.

    Pure: every call is given the time (seconds on a monotonic clock), so tests drive it.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> float:
        """Spend one token at `now`: 0.0 if there was one, else the seconds until there is."""
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class Reader:
    """Acts on one connection's client frames, within its error budget and command bucket."""

    def __init__(
        self,
        conn: WsConnection,
        user: str,
        hub: Hub,
        commands: dict[str, CommandHandler],
        limits: Limits,
        now: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._user = user
        self._hub = hub
        self._commands = commands
        self._rate = limits.command_rate
        self._now = now
        self._errors = ErrorBudget(limits.error_budget, limits.error_window)
        self._refusals = ErrorBudget(limits.command_flood_limit, limits.error_window)
        self._bucket = CommandBucket(limits.command_rate, limits.command_burst, now())

    async def handle(self, message: str | bytes) -> str | None:
        """Act on one client frame (answered); the reason to close 1008, if it came to that."""
        try:
            request = decode_client(message)
        except ProtocolError as exc:
            return self._bad_frame(str(exc))
        except RecursionError:
            return self._bad_frame("invalid JSON: nested too deeply")
        if isinstance(request, Subscribe):
            try:
                self._hub.subscribe(self._conn, request)
            except SubscriptionError as exc:
                return self._bad_frame(str(exc))
            return None
        wait = self._bucket.take(self._now())
        if wait > 0.0:
            return self._refuse(request, wait)
        ack, problem = await _run_command(request, self._user, self._hub, self._commands)
        self._conn.send_frame(encode(ack).encode())
        return None if problem is None else self._count_error()

    def _bad_frame(self, message: str) -> str | None:
        self._conn.send_frame(encode(Error(code="bad_request", message=message)).encode())
        return self._count_error()

    def _count_error(self) -> str | None:
        self._hub.metrics(self._user).errors += 1
        return None if self._errors.spend(self._now()) else "too many bad messages"

    def _refuse(self, command: Command, wait: float) -> str | None:
        """Answer a command over the bucket with `rate_limited`, without running it."""
        retry_ms = math.ceil(wait * 1000)
        message = f"over {self._rate:g} commands a second; retry in {retry_ms} ms"
        error = AckError(code="rate_limited", message=message, retry_after_ms=retry_ms)
        self._conn.send_frame(encode(Ack(id=command.id, ok=False, error=error)).encode())
        self._hub.metrics(self._user).commands_refused += 1
        return None if self._refusals.spend(self._now()) else "too many commands"


async def serve_connection(
    ws: ServerConnection,
    user: str,
    hub: Hub,
    commands: dict[str, CommandHandler],
    limits: Limits,
) -> None:
    """Run one authenticated connection until it closes."""
    conn = WsConnection(ws, limits.close_timeout)
    reader = Reader(conn, user, hub, commands, limits, asyncio.get_running_loop().time)
    hub.connect(conn, user)
    sender = asyncio.create_task(conn.run_sender(), name=f"ws-sender-{user}")
    try:
        async for message in ws:
            reason = await reader.handle(message)
            if reason is not None:
                await ws.close(CLOSE_POLICY_VIOLATION, reason)
                break
            await asyncio.sleep(0)  # take turns: see the module docstring
    except ConnectionClosed:
        pass
    finally:
        hub.disconnect(conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _run_command(
    command: Command, user: str, hub: Hub, commands: dict[str, CommandHandler]
) -> tuple[Ack, str | None]:
    """Validate and run a command; the ACK, and the problem if the request itself was bad."""
    hub.metrics(user).commands += 1
    try:
        args = parse_command_args(command.name, command.args)
    except CommandArgsError as exc:
        return _failed(command.id, "bad_request", str(exc)), str(exc)
    handler = commands.get(command.name)
    if handler is None:
        message = f"command {command.name!r} is not available on this server"
        return _failed(command.id, "unavailable", message), None
    try:
        result = await handler(user, args)
    except CommandError as exc:
        return _failed(command.id, exc.code, exc.message), None
    except Exception:
        log.exception("command %s failed", command.name)
        return _failed(command.id, "internal", f"{command.name} failed"), None
    return Ack(id=command.id, ok=True, result=result), None


def _failed(command_id: str, code: str, message: str) -> Ack:
    return Ack(id=command_id, ok=False, error=AckError(code=code, message=message))
