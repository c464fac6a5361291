"""`kill -9` of a server while it trades and writes, three times over, with two consoles
attached: each time the database is intact, every lifecycle event a console was shown is in
it, the server comes back on the same epoch with `seq` going on, and the consoles resume by
themselves without losing or repeating an event."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from ginie_protocol import USER_TYPES, decode_server
from ginie_protocol.events import LifecycleEvent
from ginie_tui.connection import ConnState
from ginie_tui.feed import FeedSettings
from tests.faults.consoles import HeadlessConsole, snapshot_state
from tests.harness import ServerProcess, wait_for

SPEED = "600"
"""Ten market minutes a second: chains open and close, lifecycle rows are written all along."""

KILLS = 3
NEW_STEPS_BEFORE_KILL = 4
"""Lifecycle events each console must be shown in a round before the server is killed."""


def console_settings(url: str, token: str, seed: int) -> FeedSettings:
    return FeedSettings(
        url=url,
        token=token,
        grace_s=120.0,
        backoff_base_s=0.05,
        backoff_cap_s=0.5,
        http_timeout_s=5.0,
        seed=seed,
    )


def check_database(db_path: Path) -> tuple[dict[int, LifecycleEvent], dict[int, Any], str]:
    """Integrity, the lifecycle rows by id, demo's logged events by seq, and the epoch."""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT id, chain_id, symbol, step, message, details, time "
            "FROM trade_lifecycle_events WHERE user = 'demo'"
        ).fetchall()
        frames = conn.execute("SELECT seq, frame FROM events WHERE user = 'demo'").fetchall()
        (epoch,) = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    finally:
        conn.close()
    lifecycle = {
        r[0]: LifecycleEvent(
            id=r[0],
            chain_id=r[1],
            symbol=r[2],
            step=r[3],
            message=r[4],
            details=json.loads(r[5]),
            time=r[6],
        )
        for r in rows
    }
    return lifecycle, {seq: decode_server(frame) for seq, frame in frames}, epoch


async def test_kill_9_while_writing_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db_path = tmp_path / "ginie.db"
    server = ServerProcess(db_path, "--exchange", "paper", "--speed", SPEED, "--seed", "7")
    server.start()
    assert server.token is not None
    token, url = server.token, server.url
    port = url.rsplit(":", 1)[1]
    consoles = [HeadlessConsole(console_settings(url, token, seed)) for seed in (1, 2)]
    for console in consoles:
        console.start()
    epochs: set[str] = set()
    try:
        for round_number in range(KILLS):
            await wait_for(lambda: all(c.live for c in consoles), timeout=20)
            shown_before = [len(c.recorder.lifecycle) for c in consoles]
            await wait_for(
                lambda before=shown_before: all(
                    len(c.recorder.lifecycle) >= n + NEW_STEPS_BEFORE_KILL
                    for c, n in zip(consoles, before, strict=True)
                ),
                timeout=30,
            )
            server.stop(signal.SIGKILL)

            rows, logged, epoch = check_database(db_path)
            epochs.add(epoch)
            for console in consoles:
                for row_id, shown in console.recorder.lifecycle.items():
                    assert rows.get(row_id) == shown, f"lifecycle row {row_id} lost"
                for seq in console.applied_seqs():
                    assert seq in logged, f"event {seq} was delivered but not logged"
                assert console.store.epoch == epoch

            speed = SPEED if round_number < KILLS - 1 else "0.001"
            server = ServerProcess(
                db_path, "--exchange", "paper", "--speed", speed, "--seed", "7", "--port", port
            )
            server.start()
            assert server.token is None, "a restart must not create a new demo token"

        await wait_for(lambda: all(c.live for c in consoles), timeout=20)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            snapshot = (
                await http.get("/api/snapshot", params={"topics": ",".join(sorted(USER_TYPES))})
            ).json()
            pages = (await http.get("/api/futures/trade-events", params={"limit": 1000})).json()
        await wait_for(lambda: all(c.store.seq == snapshot["seq"] for c in consoles), timeout=10)
    finally:
        for console in consoles:
            await console.stop()
        server.stop()

    assert epochs == {snapshot["epoch"]}
    assert len(pages["data"]) < 1000, "every lifecycle row fits one page"
    served = {item["id"]: item for item in pages["data"]}
    for console in consoles:
        assert console.audit() == []
        snapshots = [kind for kind, _seq in console.recorder.timeline if kind == "snapshot"]
        assert snapshots == ["snapshot"], "after start-up the console resumed, never resynced"
        assert console.recorder.states.count(ConnState.LIVE) == KILLS + 1
        assert console.store.epoch == snapshot["epoch"]
        assert console.state() == snapshot_state(snapshot["data"])
        for row_id, shown in console.recorder.lifecycle.items():
            assert {k: v for k, v in served[row_id].items() if k != "seq"} == shown.model_dump(
                mode="json"
            )
