"""The unit of work on both backends: engine state and the events describing it commit in one
transaction or not at all; a failed commit is retried whole, and delivered once; on
PostgreSQL, a broken connection and a commit that failed after taking effect lose nothing and
repeat nothing."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import psycopg
import pytest

from ginie_protocol.events import Stats
from ginie_server.clock import ManualClock
from ginie_server.hub import Hub
from ginie_server.storage.backend import Database
from ginie_server.storage.postgres import PostgresDatabase, open_postgres
from ginie_server.storage.trading import TradingStore
from tests.cluster.pg import Backend
from tests.engine import conftest as engine_rig
from tests.engine import test_unit_of_work as unit_of_work_tests
from tests.harness import wait_for
from tests.server.test_hub import balance, connect

KILL_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def committed_counts(backend: Backend, user: str) -> tuple[int, int]:
    """`(trading_state rows, events)` of `user` as another connection sees them."""
    ((state,),) = backend.rows('SELECT COUNT(*) FROM trading_state WHERE "user" = ?', user)
    ((events,),) = backend.rows('SELECT COUNT(*) FROM events WHERE "user" = ?', user)
    return int(state), int(events)


async def test_state_is_never_committed_without_the_events_that_describe_it(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_rig, "open_database", lambda _path: backend.open())
    monkeypatch.setattr(
        unit_of_work_tests, "committed_counts", lambda _path, user: committed_counts(backend, user)
    )
    await unit_of_work_tests.test_state_is_never_committed_without_the_events_that_describe_it(
        tmp_path / "unused.db"
    )


@pytest.mark.postgres
async def test_only_the_journal_commits_while_the_engine_trades_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committers: list[str] = []
    commit = PostgresDatabase.commit

    def recorded(self: PostgresDatabase) -> None:
        if self.in_transaction:
            committers.append(
                next(
                    f"{frame.frame.f_globals['__name__']}.{frame.function}"
                    for frame in inspect.stack()[1:]
                    if frame.frame.f_globals.get("__name__", "").startswith("ginie_server")
                )
            )
        commit(self)

    monkeypatch.setattr(engine_rig, "open_database", lambda _path: open_postgres(pg_url))
    rig = engine_rig.Rig(tmp_path / "unused.db")
    monkeypatch.setattr(PostgresDatabase, "commit", recorded)
    await rig.start("alice", "bob")
    await rig.command("bob", "ginie.stop")
    await rig.run_until(lambda: bool(rig.book("alice").live_chains()))
    chain = rig.book("alice").live_chains()[0]
    await rig.command("alice", "position.close", symbol=chain.symbol)
    for _ in range(30):
        await rig.run(1)
        rig.hub.flush()
    await rig.close()
    assert len(committers) > 10
    assert set(committers) == {"ginie_server.journal.commit"}


def refuse_event(backend: Backend, db: Database, seq: int) -> None:
    """Make the insert of event `seq` fail inside the database until `refused` is emptied."""
    db.execute("CREATE TABLE refused (seq INTEGER)")
    db.execute("INSERT INTO refused VALUES (?)", (seq,))
    if backend.name == "sqlite":
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events "
            "WHEN NEW.seq IN (SELECT seq FROM refused) "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    else:
        db.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.seq IN (SELECT seq FROM refused) THEN RAISE EXCEPTION 'disk says no'; "
            "END IF; RETURN NEW; END $$"
        )
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    db.commit()


async def test_a_refused_event_rolls_back_its_state_and_the_retry_writes_both_once(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    db = backend.open()
    TradingStore(db)
    refuse_event(backend, db, seq=3)
    hub = Hub(db, clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    with caplog.at_level(logging.ERROR, logger="ginie_server.journal"):
        for n in range(1, 6):
            hub.write(TradingStore.put("alice", "STATS_UPDATE", "", Stats(total_trades=n)))
            hub.publish("alice", Stats(total_trades=n))
        hub.flush()
    assert "journal commit failed" in caplog.text
    assert conn.events() == [] and committed_counts(backend, "alice") == (0, 0)
    db.execute("DELETE FROM refused")
    db.commit()
    await wait_for(lambda: len(conn.events()) == 5)
    assert [e["seq"] for e in conn.events()] == [1, 2, 3, 4, 5]
    assert committed_counts(backend, "alice") == (1, 5)
    ((data,),) = backend.rows("SELECT data FROM trading_state WHERE topic = 'STATS_UPDATE'")
    assert Stats.model_validate_json(data).total_trades == 5


@pytest.mark.postgres
async def test_a_broken_connection_is_retried_on_a_new_one_without_loss(pg_url: str) -> None:
    db = open_postgres(pg_url)
    hub = Hub(db, clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    hub.publish("alice", balance("USDT", 1))
    hub.flush()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(KILL_OTHERS)
    for n in range(2, 6):
        hub.publish("alice", balance("USDT", n))
    hub.flush()
    await wait_for(lambda: len(conn.events()) == 5)
    assert [e["seq"] for e in conn.events()] == [1, 2, 3, 4, 5]
    with psycopg.connect(pg_url) as reader:
        seqs = [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5]
    db.close()


class CommitThenFail(PostgresDatabase):
    """A connection whose first commit takes effect and then reports a failure, as when the
    connection breaks while the server answers `COMMIT`."""

    failures = 1

    def commit(self) -> None:
        super().commit()
        if self.failures:
            self.failures -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.mark.postgres
async def test_a_commit_that_failed_after_taking_effect_is_delivered_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    open_postgres(pg_url).close()
    db = CommitThenFail(pg_url)
    hub = Hub(db, clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    with caplog.at_level(logging.WARNING, logger="ginie_server.journal"):
        for n in range(1, 4):
            hub.publish("alice", balance("USDT", n))
        hub.flush()
        assert conn.events() == []
        hub.publish("alice", balance("USDT", 4))
        await wait_for(lambda: len(conn.events()) == 4)
    assert "had taken effect" in caplog.text
    assert [e["seq"] for e in conn.events()] == [1, 2, 3, 4]
    with psycopg.connect(pg_url) as reader:
        seqs = [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == [1, 2, 3, 4]
    db.close()
