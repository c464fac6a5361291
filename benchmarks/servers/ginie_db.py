"""Ginie's server on a database it is given, alone or as a cluster node, with the bench load:
`python -m benchmarks.servers ginie-db DATABASE TOKENS [BROKER ROLE]`.

DATABASE is a `postgresql://` URL (or an SQLite file's path). The bench users' tokens are
made in it and written to TOKENS unless that file exists already (the second node of a
cluster finds it there, and the users in the shared database). With BROKER (`redis://...`)
and ROLE (`all`, `engine`, `edge`) the server is a cluster node: `GinieServer` with a
`ClusterConfig`. A node that may run the engine prints its ready line only once it holds the
engine lease (the hub refuses commits until then), so the load on its control port is
committed from its first event. Everything else is `benchmarks.servers.ginie`'s: no other
event source, each user event through `Hub.publish`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

from benchmarks.servers.ginie import make_tokens, serve_until_stopped
from ginie_server.app import GinieServer
from ginie_server.config import ROLES, ClusterConfig, Role, ServerConfig
from ginie_server.storage.backend import is_postgres_url

ENGINE_WAIT_S = 30.0
USAGE = "usage: python -m benchmarks.servers ginie-db DATABASE TOKENS [BROKER ROLE]"


def server_config(database: str, broker: str | None, role: str | None) -> ServerConfig:
    cluster = None
    if broker is not None:
        if role not in ROLES:
            raise SystemExit(f"unknown role {role!r}; {USAGE}")
        cluster = ClusterConfig(broker_url=broker, role=cast(Role, role))
    if is_postgres_url(database):
        return ServerConfig(host="127.0.0.1", port=0, db_url=database, cluster=cluster)
    return ServerConfig(host="127.0.0.1", port=0, db_path=Path(database), cluster=cluster)


async def wait_for_engine(server: GinieServer, limit_s: float = ENGINE_WAIT_S) -> None:
    """Until this node holds the engine lease (its lease loop takes a free one at once)."""
    node = server.node
    assert node is not None
    deadline = time.monotonic() + limit_s
    while not node.owns_engine:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the node did not take the engine lease in {limit_s:g} s")
        await asyncio.sleep(0.01)


async def main(argv: list[str]) -> None:
    if len(argv) not in (2, 4):
        raise SystemExit(USAGE)
    database, tokens = argv[0], Path(argv[1])
    broker, role = (argv[2], argv[3]) if len(argv) == 4 else (None, None)
    await asyncio.to_thread(make_tokens, database, tokens)
    config = server_config(database, broker, role)
    server = GinieServer(config, sources=[])
    await server.start()
    try:
        if config.cluster is not None and config.cluster.runs_engine:
            await wait_for_engine(server)
        await serve_until_stopped(server)
    finally:
        await server.stop()
