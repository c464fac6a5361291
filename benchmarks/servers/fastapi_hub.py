"""The per-user hub (`hubcore`) on FastAPI and uvicorn's default WebSocket (websockets-sansio).

The idiomatic shape: each connection has an `asyncio.Queue` and a sender task awaiting
`WebSocket.send_text`; publishing puts the frame on the queue of each subscribed connection.
The client subscribes with Ginie's `subscribe` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from benchmarks.servers.control import serve_control
from benchmarks.servers.hubcore import HubCore


class FastApiHub:
    def __init__(self, db_path: Path) -> None:
        self.core: HubCore[asyncio.Queue[str]] = HubCore.open(db_path, self._deliver)
        self.app = FastAPI()
        self.app.add_api_websocket_route("/ws", self.endpoint)

    def connections(self) -> int:
        return self.core.subscribed()

    async def endpoint(self, websocket: WebSocket, user: str = "anonymous") -> None:
        await websocket.accept()
        queue: asyncio.Queue[str] = asyncio.Queue()
        subscriber = self.core.add(user, queue)
        sender = asyncio.create_task(self._send(websocket, queue))
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                if message.get("op") == "subscribe":
                    subscriber.topics = frozenset(message["topics"])
                    symbols = message.get("symbols")
                    subscriber.symbols = frozenset(symbols) if symbols else None
        except WebSocketDisconnect:
            pass
        finally:
            self.core.remove(subscriber)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    @staticmethod
    async def _send(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
        while True:
            await websocket.send_text(await queue.get())

    async def publish_user(self, user: str, data: dict[str, Any]) -> None:
        self.core.publish_user(user, data)

    @staticmethod
    def _deliver(batch: list[tuple[str, list[asyncio.Queue[str]]]]) -> None:
        for frame, queues in batch:
            for queue in queues:
                queue.put_nowait(frame)

    async def publish_market(self, data: dict[str, Any]) -> None:
        frame, queues = self.core.market_frame(data)
        for queue in queues:
            queue.put_nowait(frame)


async def main(db_path: Path) -> None:
    hub = FastApiHub(db_path)
    config = uvicorn.Config(
        hub.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", loop="none"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    stop = asyncio.Event()
    control = await serve_control(hub, port, stop)
    await stop.wait()
    control.close()
    server.should_exit = True
    await serving
