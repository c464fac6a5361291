"""The engine lease and its fence on a real PostgreSQL, two journals or two nodes in one
process: a node that lost the lease can never write a `seq` (or the state beside it) that the
new owner uses, and a node that cannot start the engine leaves it to another."""

from __future__ import annotations

import psycopg
import pytest

from ginie_server.clock import ManualClock
from ginie_server.cluster.lease import STALLED, EngineLease, LeaseFence
from ginie_server.cluster.node import ClusterNode
from ginie_server.config import ClusterConfig
from ginie_server.hub import Hub
from ginie_server.sources import CommandHandler
from ginie_server.storage.postgres import open_postgres
from tests.cluster.nodes import RedisServer
from tests.harness import wait_for
from tests.server.test_hub import balance, connect

pytestmark = pytest.mark.postgres


def expire(url: str) -> None:
    """Let the lease run out now (as if its holder had stopped renewing it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE engine_lease SET expires_at = now() - interval '1 second'")


def events_of(url: str, user: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            'SELECT seq, frame FROM events WHERE "user" = %s ORDER BY seq', (user,)
        ).fetchall()
    return [(int(seq), str(frame)) for seq, frame in rows]


def test_the_lease_is_taken_when_free_and_only_then(pg_url: str) -> None:
    first = EngineLease(pg_url, "node-a", seconds=30)
    second = EngineLease(pg_url, "node-b", seconds=30)
    try:
        token = first.try_acquire()
        assert token == 1
        assert second.try_acquire() is None
        assert first.renew(token)
        expire(pg_url)
        taken = second.try_acquire()
        assert taken == 2
        assert not first.renew(token)
        first.release(token)
        assert second.holder() == ("node-b", 2, True)
        second.release(taken)
        assert first.try_acquire() == 3
    finally:
        first.close()
        second.close()


async def test_a_commit_under_a_lease_taken_over_is_refused_whole(pg_url: str) -> None:
    old = EngineLease(pg_url, "node-a", seconds=30)
    new = EngineLease(pg_url, "node-b", seconds=30)
    databases = [open_postgres(pg_url), open_postgres(pg_url)]
    old_hub, new_hub = (Hub(db, clock=ManualClock()) for db in databases)
    fenced: list[str] = []
    try:
        old_token = old.try_acquire()
        assert old_token is not None
        old_hub.journal.fence = LeaseFence(old_token)
        old_hub.journal.on_fenced = lambda: fenced.append("old")
        watcher = connect(old_hub, "alice", ["*"])
        old_hub.publish("alice", balance("A1"))
        old_hub.flush()
        assert [seq for seq, _ in events_of(pg_url, "alice")] == [1]
        assert len(watcher.frames) == 3  # HELLO, SUBSCRIBED, seq 1

        expire(pg_url)
        new_token = new.try_acquire()
        assert new_token == old_token + 1
        new_hub.journal.fence = LeaseFence(new_token)
        new_hub.reload()

        old_hub.publish("alice", balance("OLD"))
        old_hub.flush()
        assert fenced == ["old"]
        assert not old_hub.journal.pending
        assert len(watcher.frames) == 3, "nothing refused is sent"
        assert old_hub.current_seq("alice") == 1, "no client is told of a refused number"
        assert [seq for seq, _ in events_of(pg_url, "alice")] == [1]

        new_hub.publish("alice", balance("NEW"))
        new_hub.flush()
        logged = events_of(pg_url, "alice")
        assert [seq for seq, _ in logged] == [1, 2]
        assert "NEW" in logged[1][1]

        old_hub.reload()
        assert old_hub.current_seq("alice") == 2
        assert [f.get("seq") for f in watcher.frames][-1] == 2, "the catch-up delivers seq 2"
    finally:
        for hub in (old_hub, new_hub):
            hub.close()
        for db in databases:
            db.close()
        old.close()
        new.close()


async def test_a_node_whose_engine_fails_to_start_frees_the_lease_for_another(
    pg_url: str, redis_server: RedisServer
) -> None:
    config = ClusterConfig(
        broker_url=redis_server.url, role="engine", lease_seconds=3.0, renew_seconds=0.1
    )

    async def broken() -> dict[str, CommandHandler]:
        raise RuntimeError("the exchange cannot be reached from this node")

    async def working() -> dict[str, CommandHandler]:
        return {}

    async def nothing() -> None:
        return None

    databases = [open_postgres(pg_url, STALLED), open_postgres(pg_url, STALLED)]
    hubs = [Hub(db, clock=ManualClock()) for db in databases]
    failing = ClusterNode(config, pg_url, hubs[0], take_engine=broken, give_up_engine=nothing)
    await failing.start()
    healthy: ClusterNode | None = None
    try:
        checker = EngineLease(pg_url, "checker", seconds=3)
        try:
            await wait_for(lambda: checker.holder()[1] >= 1 and checker.holder()[0] is None, 10)
        finally:
            checker.close()
        assert not failing.owns_engine
        healthy = ClusterNode(config, pg_url, hubs[1], take_engine=working, give_up_engine=nothing)
        await healthy.start()
        await wait_for(lambda: healthy is not None and healthy.owns_engine, timeout=5)
        assert not failing.owns_engine
    finally:
        for node in (failing, healthy):
            if node is not None:
                await node.stop()
        for hub in hubs:
            hub.close()
        for db in databases:
            db.close()
