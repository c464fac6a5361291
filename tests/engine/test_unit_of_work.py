"""The unit of work: engine state and the events that describe it become durable together, in
the journal's one commit, and nothing else in the server commits them."""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

from .conftest import Rig


def committed_counts(db_path: Path, user: str) -> tuple[int, int]:
    """`(trading_state rows, events)` of `user` as a second connection sees them."""
    reader = sqlite3.connect(db_path)
    try:
        state = reader.execute("SELECT COUNT(*) FROM trading_state WHERE user = ?", (user,))
        events = reader.execute("SELECT COUNT(*) FROM events WHERE user = ?", (user,))
        return int(state.fetchone()[0]), int(events.fetchone()[0])
    finally:
        reader.close()


async def test_state_is_never_committed_without_the_events_that_describe_it(
    db_path: Path,
) -> None:
    rig = Rig(db_path)
    await rig.start()
    rig.hub.flush()
    rig.engine.attach_user("alice")
    await rig.engine.pump()
    # the engine has published alice's first state; the hub has not committed it yet
    assert rig.hub.current_seq("alice") > 0
    assert committed_counts(db_path, "alice") == (0, 0)
    rig.hub.flush()
    rows, events = committed_counts(db_path, "alice")
    assert rows > 0 and events == rig.hub.current_seq("alice")
    await rig.close()


async def test_only_the_journal_commits_while_the_engine_trades(db_path: Path) -> None:
    rig = Rig(db_path)
    committers: list[str] = []

    def on_statement(statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            caller = next(
                f"{frame.frame.f_globals['__name__']}.{frame.function}"
                for frame in inspect.stack()[1:]
                if frame.frame.f_globals.get("__name__", "").startswith("ginie_server")
            )
            committers.append(caller)

    rig.conn.set_trace_callback(on_statement)
    await rig.start("alice", "bob")
    await rig.command("bob", "ginie.stop")
    await rig.run_until(lambda: bool(rig.book("alice").live_chains()))
    chain = rig.book("alice").live_chains()[0]
    await rig.command("alice", "position.close", symbol=chain.symbol)
    await rig.command("alice", "autopilot.set_rules", min_confidence=0.7)
    for _ in range(90):
        await rig.run(1)
        rig.hub.flush()
    await rig.close()
    assert len(committers) > 10
    assert set(committers) == {"ginie_server.journal.commit"}
