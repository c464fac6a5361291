"""Shared test helpers: waiting on conditions, running a real server in-process or as a
subprocess, a small WebSocket client that speaks the protocol, and a scripted event source.

- `await wait_for(lambda: cond, timeout=5)`: poll a condition instead of sleeping.
- `async with running_server(tmp_path, **config) as rs`: a `GinieServer` on 127.0.0.1, port 0,
  with a real SQLite file; `rs.url`, `rs.ws_url`, `rs.token` (demo's), `rs.create_token(user)`.
- `with ServerProcess(db_path) as proc`: `python -m ginie_server` as a child process.
- `async with connect_client(rs.ws_url, rs.token) as client`: HELLO read, then
  `await client.subscribe(...)`, `await client.recv()`, `await client.command(...)`.
- `await subscribed_reader(url, token)`: a socket subscribed to everything whose `run()` keeps
  the user events' seqs and the close code; `note_event(n)` makes a sizeable user event.
- `ScriptedSource`: a source whose events the test publishes with `emit(user, data)`.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ginie_protocol.commands import CommandArgs
from ginie_protocol.envelope import Ack, Hello, ResumePoint, Subscribed, decode_server
from ginie_protocol.events import EVENT_TYPE_OF, KEY_FIELD, LifecycleEvent, Stats, WireModel
from ginie_server.app import GinieServer
from ginie_server.clock import Clock
from ginie_server.config import ServerConfig
from ginie_server.hub import Hub
from ginie_server.sources import (
    CommandHandler,
    MarketSnapshotProvider,
    Publisher,
    SnapshotProvider,
    Source,
)

SERVER_START_TIMEOUT = 15.0


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll `predicate` on the event loop until it is true; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            name = getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{name} still false after {timeout} s")
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------- in-process server


@dataclass
class RunningServer:
    """A started in-process server and what a test needs to talk to it."""

    server: GinieServer
    token: str
    """A token of `demo`."""

    @property
    def hub(self) -> Hub:
        return self.server.hub

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def create_token(self, user: str) -> str:
        return self.server.create_token(user)

    def auth(self, token: str | None = None) -> dict[str, str]:
        """Headers that authenticate as demo (or with `token`)."""
        return {"Authorization": f"Bearer {token or self.token}"}


@asynccontextmanager
async def running_server(
    tmp_path: Path,
    *,
    sources: list[Source] | None = None,
    clock: Clock | None = None,
    **config_overrides: Any,
) -> AsyncIterator[RunningServer]:
    """Start a GinieServer on 127.0.0.1:0 over `tmp_path/ginie.db` (or `db_path=`), stop it after.

    `sources=None` gives the default sources of the config; `sources=[]` gives none.
    """
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "db_path": tmp_path / "ginie.db"}
    settings.update(config_overrides)
    server = GinieServer(ServerConfig(**settings), clock=clock, sources=sources)
    await server.start()
    try:
        token = server.demo_token or server.create_token("demo")
        yield RunningServer(server=server, token=token)
    finally:
        await server.stop()


# ---------------------------------------------------------------------------- child process


class ServerProcess:
    """`python -m ginie_server --port 0 --db PATH ...` as a child process.

    `start()` waits for the `listening on` line; `url` and `token` (the demo token line, when
    the database was new) are read from stdout. `stop()` sends SIGTERM, then kills.
    """

    def __init__(
        self,
        db_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = SERVER_START_TIMEOUT,
    ) -> None:
        self.db_path = db_path
        self.args = args
        self.env = env
        self.timeout = timeout
        self.url = ""
        self.token: str | None = None
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr_path = db_path.with_name(db_path.name + ".stderr")

    def start(self) -> ServerProcess:
        expect_token = not self.db_path.exists()
        command = [sys.executable, "-m", "ginie_server", "--port", "0", "--db", str(self.db_path)]
        environment = {**os.environ, **(self.env or {})}
        with self._stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [*command, *self.args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=environment,
            )
        threading.Thread(target=self._pump, daemon=True).start()
        first = self.read_line()
        if not first.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"server printed {first!r} first; stderr: {self.stderr()}")
        self.url = first.removeprefix("listening on ")
        if expect_token:
            second = self.read_line()
            if not second.startswith("demo token: "):
                self.stop()
                raise RuntimeError(f"expected the demo token line, got {second!r}")
            self.token = second.removeprefix("demo token: ")
        return self

    def read_line(self, timeout: float | None = None) -> str:
        """The next stdout line; RuntimeError if none comes in time or the process ended."""
        try:
            line = self._stdout.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise RuntimeError(f"no output from the server; stderr: {self.stderr()}") from None
        if line is None:
            raise RuntimeError(f"the server exited; stderr: {self.stderr()}")
        self.lines.append(line)
        return line

    def stderr(self) -> str:
        return self._stderr_path.read_text() if self._stderr_path.exists() else ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server (SIGTERM by default, then kill); return its exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.timeout)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self._stdout.put(line.rstrip("\n"))
        except ValueError:
            pass
        self._stdout.put(None)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------- WebSocket client


class ProtocolClient:
    """A test's view of one WebSocket: decoded messages, in order, with timeouts."""

    def __init__(self, ws: ClientConnection, hello: Hello) -> None:
        self.ws = ws
        self.hello = hello

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """The next server message, decoded to its protocol model."""
        async with asyncio.timeout(timeout):
            return decode_server(await self.ws.recv())

    async def recv_until(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Skip messages until one satisfies `predicate`; return it."""
        async with asyncio.timeout(timeout):
            while True:
                message = decode_server(await self.ws.recv())
                if predicate(message):
                    return message

    async def subscribe(
        self,
        topics: list[str] | None = None,
        symbols: list[str] | None = None,
        resume: ResumePoint | None = None,
    ) -> Subscribed:
        """Send subscribe and return the SUBSCRIBED answer (RESYNC/replay follow it)."""
        message: dict[str, Any] = {"op": "subscribe", "topics": topics or ["*"]}
        if symbols is not None:
            message["symbols"] = symbols
        if resume is not None:
            message["resume"] = resume.model_dump()
        await self.send_json(message)
        answer = await self.recv_until(lambda m: m.type in ("SUBSCRIBED", "ERROR"))
        if not isinstance(answer, Subscribed):
            raise AssertionError(f"subscribe refused: {answer}")
        return answer

    async def user_events(self, count: int, timeout: float = 10.0) -> list[Any]:  # noqa: ASYNC109
        """The next `count` user events (those with a `seq`), skipping everything else."""
        events: list[Any] = []
        async with asyncio.timeout(timeout):
            while len(events) < count:
                message = decode_server(await self.ws.recv())
                if getattr(message, "seq", None) is not None:
                    events.append(message)
        return events

    async def command(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        command_id: str = "c-1",
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Ack:
        """Send a command and return its ACK (other messages in between are skipped)."""
        await self.send_json({"op": "command", "id": command_id, "name": name, "args": args or {}})
        ack = await self.recv_until(lambda m: m.type == "ACK" and m.id == command_id, timeout)
        assert isinstance(ack, Ack)
        return ack


@asynccontextmanager
async def connect_client(
    ws_url: str, token: str, **connect_kwargs: Any
) -> AsyncIterator[ProtocolClient]:
    """Open an authenticated WebSocket, read HELLO, and yield a ProtocolClient.

    The incoming queue is unbounded by default: a websockets client whose queue is full stops
    reading its socket, so it would not see the server's close frame and would wait out its
    close timeout when a test leaves messages unread.
    """
    headers = {"Authorization": f"Bearer {token}"}
    connect_kwargs.setdefault("max_queue", None)
    async with connect(ws_url, additional_headers=headers, **connect_kwargs) as ws:
        async with asyncio.timeout(5):
            hello = decode_server(await ws.recv())
        assert isinstance(hello, Hello), hello
        yield ProtocolClient(ws, hello)


@dataclass
class SeqReader:
    """Reads a subscribed socket to its end: the user events' seqs and the close code."""

    ws: ClientConnection
    seqs: list[int] = field(default_factory=list)
    close_code: int | None = None

    async def run(self) -> None:
        try:
            async for text in self.ws:
                seq = getattr(decode_server(text), "seq", None)
                if seq is not None:
                    self.seqs.append(seq)
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
        else:
            self.close_code = self.ws.close_code


async def subscribed_reader(url: str, token: str) -> SeqReader:
    """Connect, read HELLO, subscribe to every topic, and return a reader not yet running."""
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    assert decode_server(await asyncio.wait_for(ws.recv(), 5)).type == "HELLO"
    await ws.send(json.dumps({"op": "subscribe", "topics": ["*"]}))
    assert decode_server(await asyncio.wait_for(ws.recv(), 5)).type == "SUBSCRIBED"
    return SeqReader(ws)


def note_event(n: int, size: int = 900) -> LifecycleEvent:
    """The n-th user event of a test, with a message of `size` bytes to fill buffers quickly."""
    return LifecycleEvent(
        id=n, chain_id="c", symbol="BTCUSDT", step="note", message="x" * size, time=n
    )


# ---------------------------------------------------------------------------- scripted source


@dataclass
class ScriptedSource:
    """A source driven by the test: `emit(user, data)` publishes a user event and keeps it as
    that user's snapshot state (collections by key, singletons whole). Its one command,
    `ginie.start`, emits a STATS_UPDATE and answers `{"started": true}`."""

    publisher: Publisher | None = None
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    attached: list[str] = field(default_factory=list)
    snapshots: dict[str, SnapshotProvider] = field(default_factory=dict)
    commands: dict[str, CommandHandler] = field(default_factory=dict)
    market_snapshot: MarketSnapshotProvider | None = None

    def __post_init__(self) -> None:
        for topic, key in KEY_FIELD.items():
            if topic not in ("LIFECYCLE_EVENT",) and not topic.startswith("FUTURES_"):
                self.snapshots[topic] = self._provider(topic, key)
        self.commands["ginie.start"] = self._start_command

    async def start(self, publisher: Publisher) -> None:
        self.publisher = publisher

    async def stop(self) -> None:
        self.publisher = None

    def attach_user(self, user: str) -> None:
        self.attached.append(user)

    def emit(self, user: str, data: WireModel) -> None:
        assert self.publisher is not None, "the source is not started"
        topic = EVENT_TYPE_OF[type(data)]
        key = KEY_FIELD[topic]
        items = self.state.setdefault(user, {}).setdefault(topic, {})
        items[getattr(data, key) if key else None] = data
        self.publisher.publish(user, data)

    def _provider(self, topic: str, key: str | None) -> SnapshotProvider:
        def provide(user: str) -> Any:
            items = self.state.get(user, {}).get(topic, {})
            if key is None:
                return items.get(None)
            return list(items.values())

        return provide

    async def _start_command(self, user: str, args: CommandArgs) -> dict[str, Any]:
        self.emit(user, Stats(total_trades=1, by_source={"manual": 1}))
        return {"started": True}
