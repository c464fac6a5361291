"""The WAL checkpointer: checkpoints run on a thread of their own, the WAL stays bounded under
a steady stream of commits, it stops cleanly, and the server wires it for its lifetime."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ginie_server.storage.db import WalCheckpointer, open_database
from ginie_server.storage.event_log import EventLog
from tests.harness import ScriptedSource, running_server, wait_for
from tests.server.test_hub import balance

RESTART_PAGES = 64
COMMITS = 2_000


def checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wal-checkpointer"]


def commit_events(conn: sqlite3.Connection, count: int) -> None:
    """`count` commits of one event each, as the hub makes them under a paced load."""
    log = EventLog(conn)
    for seq in range(1, count + 1):
        log.append_many([(f"u{seq % 50}", seq, "BALANCE_UPDATE", None, seq, "x" * 500)])
        conn.commit()


async def test_a_background_pass_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    db_path = tmp_path / "g.db"
    conn = open_database(db_path)
    checkpointer = WalCheckpointer(conn, interval=0.01, restart_pages=1_000_000)
    checkpointer.start()
    assert len(checkpointer_threads()) == 1
    before = db_path.stat().st_size
    commit_events(conn, 200)
    await wait_for(lambda: db_path.stat().st_size > before + 200 * 500)
    checkpointer.stop()
    assert checkpointer_threads() == []
    conn.close()


def test_the_loop_connection_starts_the_wal_over_at_restart_pages(tmp_path: Path) -> None:
    db_path = tmp_path / "g.db"
    conn = open_database(db_path)
    checkpointer = WalCheckpointer(conn, interval=3600, restart_pages=RESTART_PAGES)
    checkpointer.start()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == RESTART_PAGES
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    commit_events(conn, COMMITS)
    checkpointer.stop()
    # The file never shrinks, so its size is the longest the WAL was. Each commit adds at least
    # one page: without restarts the WAL would hold all of them.
    wal_size = Path(f"{db_path}-wal").stat().st_size
    assert wal_size <= 2 * RESTART_PAGES * (page_size + 24) < COMMITS * page_size
    reader = sqlite3.connect(db_path)
    assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == COMMITS
    reader.close()
    conn.close()
    assert not Path(f"{db_path}-wal").exists()


def test_a_database_without_a_wal_gets_no_thread() -> None:
    conn = sqlite3.connect(":memory:")
    checkpointer = WalCheckpointer(conn)
    checkpointer.start()
    assert checkpointer_threads() == []
    checkpointer.stop()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


async def test_the_server_checkpoints_for_its_lifetime_and_leaves_no_wal(tmp_path: Path) -> None:
    source = ScriptedSource()
    async with running_server(tmp_path, sources=[source]) as rs:
        assert len(checkpointer_threads()) == 1
        for i in range(100):
            source.emit("demo", balance("USDT", i))
        rs.hub.flush()
        assert rs.hub.current_seq("demo") == 100
    assert checkpointer_threads() == []
    assert not (tmp_path / "ginie.db-wal").exists()
    reader = open_database(tmp_path / "ginie.db")
    assert reader.execute("SELECT MAX(seq) FROM events WHERE user = 'demo'").fetchone()[0] == 100
    reader.close()
