"""The per-user hub (`hubcore`) on python-socketio (aiohttp), given its cheapest path.

Each user event is one `emit` of the already-encoded frame to the list of the user's
subscribed session ids, so socketio wraps the same bytes once per event in its
`42["event", ...]` packet. Clients send `auth={"user": ...}` and a `subscribe` event.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from benchmarks.servers.control import serve_control
from benchmarks.servers.hubcore import HubCore, Subscriber


class SocketIoHub:
    def __init__(self, db_path: Path) -> None:
        self.core: HubCore[str] = HubCore.open(db_path, self._deliver)
        self.emitting: set[asyncio.Task[None]] = set()
        self.by_sid: dict[str, Subscriber[str]] = {}
        self.sio = socketio.AsyncServer(async_mode="aiohttp")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("subscribe", self.on_subscribe)

    def connections(self) -> int:
        return self.core.subscribed()

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        user = auth.get("user", "anonymous") if isinstance(auth, dict) else "anonymous"
        self.by_sid[sid] = self.core.add(user, sid)

    async def on_disconnect(self, sid: str, *reason: Any) -> None:
        subscriber = self.by_sid.pop(sid, None)
        if subscriber is not None:
            self.core.remove(subscriber)

    async def on_subscribe(self, sid: str, message: dict[str, Any]) -> None:
        subscriber = self.by_sid[sid]
        subscriber.topics = frozenset(message["topics"])
        symbols = message.get("symbols")
        subscriber.symbols = frozenset(symbols) if symbols else None

    async def publish_user(self, user: str, data: dict[str, Any]) -> None:
        self.core.publish_user(user, data)

    def _deliver(self, batch: list[tuple[str, list[str]]]) -> None:
        task = asyncio.create_task(self._emit_all(batch))
        self.emitting.add(task)
        task.add_done_callback(self.emitting.discard)

    async def _emit_all(self, batch: list[tuple[str, list[str]]]) -> None:
        for frame, sids in batch:
            if sids:
                await self.sio.emit("event", frame, to=sids)

    async def publish_market(self, data: dict[str, Any]) -> None:
        frame, sids = self.core.market_frame(data)
        if sids:
            await self.sio.emit("event", frame, to=sids)


async def main(db_path: Path) -> None:
    hub = SocketIoHub(db_path)
    runner = web.AppRunner(hub.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    control = await serve_control(hub, port, stop)
    await stop.wait()
    control.close()
    await runner.cleanup()
