"""Resume, restarts, users made by `token`, a paper server killed mid-trade and `kill -9`
while writing: the suite's own tests, run on both backends.

Each test below runs one of `tests/server`, `tests/e2e` or `tests/faults` with the helpers it
opens its database through (`running_server`, `ServerProcess`, its readers of the committed
rows) pointed at `backend`; the test's body is the suite's, unchanged.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ginie_protocol import decode_server
from ginie_protocol.events import LifecycleEvent
from ginie_server.storage.trading import TradingStore
from tests.cluster.pg import Backend
from tests.e2e import test_accounts, test_paper_server
from tests.faults import test_kill9
from tests.harness import running_server
from tests.server import test_resume as resume_tests


def on_backend(monkeypatch: pytest.MonkeyPatch, backend: Backend, module: Any) -> None:
    """Point the database helpers `module` uses at `backend`."""
    if hasattr(module, "running_server"):
        opened = functools.partial(running_server, **backend.config)
        monkeypatch.setattr(module, "running_server", opened)
    if hasattr(module, "ServerProcess"):
        monkeypatch.setattr(module, "ServerProcess", backend.server_process)


@pytest.mark.parametrize(
    "name",
    [
        "test_resume_after_seq_n_gets_exactly_the_rest_in_order",
        "test_unknown_epoch_or_beyond_the_window_resyncs_and_the_snapshot_joins_live",
        "test_restart_on_the_same_database_keeps_epoch_and_seq",
    ],
)
async def test_resume(
    name: str, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_backend(monkeypatch, backend, resume_tests)
    await getattr(resume_tests, name)(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "test_a_user_created_while_the_server_runs_trades_without_connecting",
        "test_a_user_created_before_the_server_starts_trades_from_the_start",
    ],
)
async def test_accounts_made_by_token_create(
    name: str, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_backend(monkeypatch, backend, test_accounts)
    command = test_accounts.token_command
    monkeypatch.setattr(
        test_accounts, "token_command", lambda _path, *args: command(backend.target, *args)
    )
    monkeypatch.setattr(
        test_accounts,
        "trades_of",
        lambda _path, user: backend.rows(
            "SELECT COUNT(*) FROM events WHERE \"user\" = ? AND type = 'TRADE_UPDATE'", user
        )[0][0],
    )
    await getattr(test_accounts, name)(tmp_path)


async def test_killed_mid_trade_the_server_comes_back_as_it_was(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_backend(monkeypatch, backend, test_paper_server)
    await test_paper_server.test_killed_mid_trade_the_server_comes_back_as_it_was(tmp_path)


def committed_state(backend: Backend) -> tuple[dict[int, LifecycleEvent], dict[int, Any], str]:
    """`test_kill9.check_database` on PostgreSQL: demo's lifecycle rows and events, the epoch."""
    lifecycle = {row.id: row for row in TradingStore(backend.open()).lifecycle("demo")}
    frames = backend.rows("SELECT seq, frame FROM events WHERE \"user\" = 'demo'")
    ((epoch,),) = backend.rows("SELECT value FROM meta WHERE key = 'epoch'")
    return lifecycle, {seq: decode_server(frame) for seq, frame in frames}, epoch


async def test_kill_9_while_writing_loses_nothing_acknowledged(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_backend(monkeypatch, backend, test_kill9)
    if backend.name == "postgresql":
        monkeypatch.setattr(test_kill9, "check_database", lambda _path: committed_state(backend))
    await test_kill9.test_kill_9_while_writing_loses_nothing_acknowledged(tmp_path)


def token(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ginie_server", "token", *args, *backend.cli_args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_token_create_list_and_revoke_against_a_running_server(
    backend: Backend, tmp_path: Path
) -> None:
    with backend.server_process(tmp_path, "--speed", "0.001") as server:
        created = token(backend, "create", "erin")
        assert created.returncode == 0, created.stderr
        erin = created.stdout.strip()
        async with httpx.AsyncClient(base_url=server.url) as http:
            headers = {"Authorization": f"Bearer {erin}"}
            assert (await http.get("/api/futures/balances", headers=headers)).status_code == 200
            listed = token(backend, "list")
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
            assert [line.split()[0] for line in lines[1:]] == ["demo", "erin"]
            assert erin not in listed.stdout and all(line.endswith("live") for line in lines[1:])
            revoked = token(backend, "revoke", "erin")
            assert revoked.returncode == 0, revoked.stderr
            assert (await http.get("/api/futures/balances", headers=headers)).status_code == 401
            assert token(backend, "revoke", "erin").returncode == 1
