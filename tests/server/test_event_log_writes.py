"""How the journal writes the event log: one insert statement per batch before the commit, a
failed write retried without loss, repeat or early delivery, pruning, and the partial index
that pages back through lifecycle events."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from ginie_server.clock import ManualClock
from ginie_server.config import Limits
from ginie_server.hub import Hub
from ginie_server.journal import PRUNE_EVERY
from ginie_server.storage.db import CORE_MIGRATIONS, migrate, open_database
from tests.harness import wait_for
from tests.server.test_hub import balance, connect, lifecycle


def committed_seqs(db_path: Path) -> list[int]:
    """The seqs another connection sees in the log: what is committed."""
    reader = sqlite3.connect(db_path)
    try:
        return [row[0] for row in reader.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        reader.close()


def refuse_inserts_of(db: sqlite3.Connection, seq: int, action: str) -> None:
    """Make the insert of `seq` fail inside SQLite (RAISE ABORT or ROLLBACK) until cleared."""
    db.execute("CREATE TABLE refused (seq INTEGER)")
    db.execute("INSERT INTO refused VALUES (?)", (seq,))
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq IN (SELECT seq FROM refused) "
        f"BEGIN SELECT RAISE({action}, 'disk says no'); END"
    )
    db.commit()


async def test_a_burst_is_one_insert_statement_and_one_commit(tmp_path: Path) -> None:
    db = open_database(tmp_path / "g.db")
    hub = Hub(db, clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    for i in range(50):
        hub.publish("alice", balance("USDT", i))
    assert statements == []
    hub.flush()
    db.set_trace_callback(None)
    inserts = [s for s in statements if s.startswith("INSERT INTO events")]
    assert len(inserts) == 50 and statements.count("COMMIT") == 1
    assert committed_seqs(tmp_path / "g.db") == list(range(1, 51))
    assert [e["seq"] for e in conn.events()] == list(range(1, 51))


@pytest.mark.parametrize("action", ["ABORT", "ROLLBACK"])
async def test_a_failed_write_delivers_nothing_then_retries_without_loss_or_repeat(
    tmp_path: Path, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    db_path = tmp_path / "g.db"
    db = open_database(db_path)
    refuse_inserts_of(db, seq=3, action=action)
    hub = Hub(db, clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    with caplog.at_level(logging.ERROR, logger="ginie_server.journal"):
        for i in range(5):
            hub.publish("alice", balance("USDT", i))
        hub.flush()
    assert "journal commit failed" in caplog.text
    assert conn.events() == [] and committed_seqs(db_path) == []
    hub.publish("alice", balance("USDT", 5))
    hub.flush()
    assert conn.events() == []
    db.execute("DELETE FROM refused")
    await wait_for(lambda: len(conn.events()) == 6)
    assert [e["seq"] for e in conn.events()] == [1, 2, 3, 4, 5, 6]
    assert committed_seqs(db_path) == [1, 2, 3, 4, 5, 6]
    assert [e["data"]["wallet_balance"] for e in conn.events()] == [0, 1, 2, 3, 4, 5]


async def test_the_log_is_pruned_to_log_keep_in_the_batch_that_passes_it(tmp_path: Path) -> None:
    db_path = tmp_path / "g.db"
    hub = Hub(open_database(db_path), clock=ManualClock(), limits=Limits(log_keep=10))
    for i in range(PRUNE_EVERY):
        hub.publish("alice", balance("USDT", i))
    hub.publish("bob", balance("USDT"))
    hub.flush()
    assert committed_seqs(db_path) == [1, *range(PRUNE_EVERY - 9, PRUNE_EVERY + 1)]


async def test_an_old_database_gets_the_partial_lifecycle_index_and_keeps_its_events(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "g.db"
    old = sqlite3.connect(db_path)
    migrate(old, "core", CORE_MIGRATIONS[:1])
    old.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'e1')")
    old.commit()
    first = Hub(old, clock=ManualClock())
    for i in range(1, 4):
        first.publish("alice", lifecycle(i))
        first.publish("alice", balance("USDT"))
    first.close()
    old.close()

    db = open_database(db_path)
    indexes = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
    assert "events_by_type" not in indexes
    assert "WHERE type = 'LIFECYCLE_EVENT'" in indexes["lifecycle_events"]
    hub = Hub(db, clock=ManualClock())
    assert hub.epoch == "e1" and hub.current_seq("alice") == 6
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    page = hub.lifecycle_page("alice", limit=2, before_seq=None)
    db.set_trace_callback(None)
    assert [(p["id"], p["seq"]) for p in page] == [(3, 5), (2, 3)]
    (query,) = [s for s in statements if s.startswith("SELECT seq, frame")]
    plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "lifecycle_events" in plan
