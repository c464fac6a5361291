"""What the cluster-mode tests run: Redis, node processes, and a proxy that can stall.

- `RedisServer` (`benchmarks.services`): `redis-server` on a free port of 127.0.0.1 without
  persistence; `kill()` (SIGKILL) and `start_again()` on the same port.
- `Node`: `python -m ginie_server --db URL --broker URL --role R` as a child process; its
  `metric(name)` reads its Prometheus text.
- `StallProxy`: a TCP proxy on 127.0.0.1 in a thread of its own; `stall()` stops moving
  bytes both ways (the sockets stay open, as in a partition that drops packets), `heal()`
  moves them again.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchmarks.services import RedisServer, redis_binary

from tests.cluster.pg import PgServerProcess

__all__ = ["Cluster", "Node", "RedisServer", "StallProxy", "redis_binary"]


class Node(PgServerProcess):
    """A cluster node as a child process, named for its files in `folder` (`NAME.stderr`).

    The first node of a database (`first`) prints the demo token; the others do not."""

    def __init__(
        self,
        folder: Path,
        name: str,
        db_url: str,
        broker_url: str,
        role: str = "all",
        *args: str,
        first: bool = False,
    ) -> None:
        marker = folder / name
        if not first:
            marker.touch()
        super().__init__(
            marker, "--db", db_url, "--broker", broker_url, "--role", role, "--speed", "60",
            *args,
        )  # fmt: skip
        self.name = name
        self.role = role

    def metrics_text(self, token: str) -> str:
        answer = httpx.get(
            f"{self.url}/api/metrics?format=prometheus",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.text

    def metric(self, token: str, name: str) -> float:
        """The value of the sample `name` (without labels) in the node's Prometheus text."""
        for line in self.metrics_text(token).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def get(self, token: str, path: str) -> Any:
        answer = httpx.get(
            self.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()


@dataclass
class Cluster:
    """A test's cluster: one database, one Redis, its nodes."""

    folder: Path
    db_url: str
    redis: RedisServer
    nodes: list[Node] = field(default_factory=list)
    token: str = ""
    """The demo user's token (printed by the first node)."""

    def start(
        self, name: str, role: str = "all", *, db_url: str | None = None, broker: str | None = None
    ) -> Node:
        """Start a node and wait until it listens; `db_url` and `broker` default to the
        cluster's own (a test passes a proxy's)."""
        first = not self.nodes
        node = Node(
            self.folder, name, db_url or self.db_url, broker or self.redis.url, role, first=first
        )
        self.nodes.append(node)
        node.start()
        if first:
            assert node.token is not None
            self.token = node.token
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class StallProxy:
    """A TCP proxy to `target` that can stall and heal. `start()` once, `stop()` once."""

    target: tuple[str, int]
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _flowing: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    def start(self) -> StallProxy:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stall(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def heal(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def stop(self) -> None:
        def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_later(0.1, self._loop.stop)

        self._loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
