"""The floor: plain `websockets` 17 with `broadcast()` of the same bytes, and no hub work.

A user event gets a per-user counter and one `json.dumps`; a market event one `json.dumps`;
then `websockets.broadcast()` writes the frame to each connection. No durable write, no
filter, no backpressure: the least any server can do to put these frames on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.servers.control import now_ms, serve_control


class PlainBroadcast:
    """Connections by user; frames built with `json.dumps` and sent with `broadcast()`."""

    def __init__(self) -> None:
        self.by_user: dict[str, set[ServerConnection]] = defaultdict(set)
        self.everyone: set[ServerConnection] = set()
        self.seq: dict[str, int] = defaultdict(int)

    def connections(self) -> int:
        return len(self.everyone)

    async def handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        user = query.get("user", ["anonymous"])[0]
        self.by_user[user].add(ws)
        self.everyone.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self.by_user[user].discard(ws)
            self.everyone.discard(ws)

    async def publish_user(self, user: str, data: dict[str, Any]) -> None:
        self.seq[user] += 1
        envelope = {
            "type": "LIFECYCLE_EVENT",
            "seq": self.seq[user],
            "epoch": "bench",
            "ts": now_ms(),
            "data": data,
        }
        websockets.broadcast(self.by_user[user], json.dumps(envelope, separators=(",", ":")))

    async def publish_market(self, data: dict[str, Any]) -> None:
        envelope = {"type": "FUTURES_MARK_PRICE_UPDATE", "ts": now_ms(), "data": data}
        websockets.broadcast(self.everyone, json.dumps(envelope, separators=(",", ":")))


async def main(db_path: Path) -> None:
    del db_path  # the floor writes nothing
    fanout = PlainBroadcast()
    stop = asyncio.Event()
    async with serve(fanout.handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        control = await serve_control(fanout, port, stop)
        await stop.wait()
        control.close()
