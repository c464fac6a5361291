"""The engine lease and its fence on a real PostgreSQL, two journals in one process: a node that
lost the lease can never write a `seq` (or the state beside it) that the new owner uses."""

from __future__ import annotations

import psycopg
import pytest

from ginie_server.clock import ManualClock
from ginie_server.cluster.lease import EngineLease, LeaseFence
from ginie_server.hub import Hub
from ginie_server.storage.postgres import open_postgres
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
