"""An account trades from its creation: a user made by `token create` while the server runs
has its paper account, autopilot and trades without ever connecting; revoking its tokens
does not stop it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.harness import running_server, wait_for

SPEED = 600.0
"""Market minutes per wall-clock minute: ten candles a second."""


def trades_of(db_path: Path, user: str) -> int:
    """TRADE_UPDATE events of `user` committed to the event log (read from another connection)."""
    reader = sqlite3.connect(db_path)
    try:
        row = reader.execute(
            "SELECT COUNT(*) FROM events WHERE user = ? AND type = 'TRADE_UPDATE'", (user,)
        ).fetchone()
        return int(row[0])
    finally:
        reader.close()


def token_command(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ginie_server", "token", *args, "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_user_created_while_the_server_runs_trades_without_connecting(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "ginie.db"
    async with running_server(tmp_path, speed=SPEED, seed=4) as server:
        created = await asyncio.to_thread(token_command, db_path, "create", "bob")
        assert created.returncode == 0, created.stderr
        await wait_for(lambda: server.hub.current_seq("bob") > 0, timeout=10)
        revoked = await asyncio.to_thread(token_command, db_path, "revoke", "bob")
        assert revoked.returncode == 0, revoked.stderr
        await wait_for(lambda: trades_of(db_path, "bob") > 0, timeout=60)
        assert server.hub.metrics("bob").rest_calls == {}
        assert server.hub.metrics("bob").ws_connections == 0


async def test_a_user_created_before_the_server_starts_trades_from_the_start(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "ginie.db"
    created = await asyncio.to_thread(token_command, db_path, "create", "carol")
    assert created.returncode == 0, created.stderr
    async with running_server(tmp_path, speed=SPEED, seed=4) as server:
        assert server.hub.current_seq("carol") > 0
        await wait_for(lambda: trades_of(db_path, "carol") > 0, timeout=60)
