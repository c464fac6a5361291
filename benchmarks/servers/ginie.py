"""Ginie's own server (`GinieServer`: hub, WebSocket door, REST) with the bench load as its source.

Before start, a token is made for each bench user and written beside the database
(`*.tokens.json`) for the client process. The server runs with no other event source, so the
load on the control port is all it publishes; each user event goes through `Hub.publish`
(seq, durable batched write, filters, encoding) exactly as a real source's would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from benchmarks.servers.control import USERS, now_ms, serve_control
from ginie_protocol.events import LifecycleEvent, MarkPrice
from ginie_server.app import GinieServer
from ginie_server.config import ServerConfig
from ginie_server.storage.backend import is_postgres_url, open_any
from ginie_server.storage.db import transaction
from ginie_server.storage.users import UserStore


class GinieFanout:
    def __init__(self, server: GinieServer) -> None:
        self.server = server

    def connections(self) -> int:
        return self.server.hub.connection_count()

    async def publish_user(self, user: str, data: dict[str, Any]) -> None:
        self.server.hub.publish(user, LifecycleEvent(**data))

    async def publish_market(self, data: dict[str, Any]) -> None:
        self.server.hub.publish_market(MarkPrice(**data))


def make_tokens(database: str, tokens: Path) -> None:
    """Create the bench users' tokens in `database` and write them to `tokens`, unless
    `tokens` exists already."""
    if tokens.exists():
        return
    db = open_any(database if is_postgres_url(database) else Path(database))
    try:
        users = UserStore(db)
        with transaction(db):
            made = {user: users.create_token(user, now_ms()) for user in USERS}
    finally:
        db.close()
    partial = tokens.with_suffix(".partial")
    partial.write_text(json.dumps(made))
    partial.replace(tokens)


async def serve_until_stopped(server: GinieServer) -> None:
    """Serve the bench's control socket for a started `server` until the bench says stop."""
    stop = asyncio.Event()
    control = await serve_control(GinieFanout(server), server.port, stop)
    try:
        await stop.wait()
    finally:
        control.close()


async def main(db_path: Path) -> None:
    await asyncio.to_thread(make_tokens, str(db_path), db_path.with_suffix(".tokens.json"))
    server = GinieServer(ServerConfig(host="127.0.0.1", port=0, db_path=db_path), sources=[])
    await server.start()
    try:
        await serve_until_stopped(server)
    finally:
        await server.stop()
