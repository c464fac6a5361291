"""`ginie-server` as a user runs it: the first lines, token management, and clean failures."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import ServerProcess


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ginie_server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_first_lines_are_the_address_then_the_demo_token(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with ServerProcess(db) as proc:
        assert proc.lines[0].startswith("listening on http://127.0.0.1:")
        assert proc.token is not None and len(proc.token) >= 43
        health = httpx.get(proc.url + "/api/health", timeout=5)
        assert health.status_code == 200
        balances = httpx.get(
            proc.url + "/api/futures/balances",
            headers={"Authorization": f"Bearer {proc.token}"},
            timeout=5,
        )
        assert balances.status_code == 200
        assert proc.stop() == 0
    assert proc.token not in proc.stderr()
    with ServerProcess(db) as again:
        assert again.token is None
        assert again.stop(signal.SIGINT) == 0


def test_token_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    created = run_cli("token", "create", "alice", "--db", db)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and len(token) >= 43
    listed = run_cli("token", "list", "--db", db)
    assert listed.returncode == 0 and "alice" in listed.stdout and "live" in listed.stdout
    assert token not in listed.stdout
    revoked = run_cli("token", "revoke", "alice", "--db", db)
    assert revoked.returncode == 0
    assert "revoked" in run_cli("token", "list", "--db", db).stdout
    assert run_cli("token", "revoke", "alice", "--db", db).returncode == 1
    with ServerProcess(tmp_path / "g.db") as proc:
        assert proc.token is None
        refused = httpx.get(
            proc.url + "/api/pnl", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert refused.status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "abc"],
        ["--port", "70000"],
        ["--speed", "0"],
        ["--speed", "nan"],
        ["--exchange", "kraken"],
        ["--log-level", "loud"],
        ["--tls-cert", "cert.pem"],
        ["--owner", "not a name"],
        ["--bogus"],
        ["token"],
        ["token", "create"],
        ["token", "create", "bad name"],
        ["token", "destroy", "x"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, "--db", str(tmp_path / "g.db"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ginie-server: error:")
    assert "Traceback" not in result.stderr


def test_an_unreadable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not sqlite " * 300)
    for args in (
        ["--port", "0", "--db", str(junk)],
        ["--port", "0", "--db", str(tmp_path)],
        ["token", "list", "--db", str(junk)],
    ):
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1 and "database" in result.stderr, result.stderr
        assert result.stdout == ""
    assert junk.read_bytes() == b"definitely not sqlite " * 300


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--port", str(port), "--db", str(tmp_path / "g.db"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""


def test_a_non_loopback_address_without_tls_is_warned_about(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "g.db", "--host", "0.0.0.0") as proc:
        assert proc.url.startswith("http://0.0.0.0:")
        proc.stop()
    assert "without TLS" in proc.stderr()
    assert proc.token is not None and proc.token not in proc.stderr()


def test_tls_serves_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=False,
        timeout=30,
        env={**os.environ, "OPENSSL_CONF": ""},
    )
    if made.returncode != 0:
        pytest.skip("openssl cannot make a test certificate here")
    with ServerProcess(tmp_path / "g.db", "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        assert proc.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        answer = httpx.get(proc.url + "/api/health", verify=trust, timeout=5)
        assert answer.status_code == 200


def test_the_server_runs_on_uvloop_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    from ginie_server import cli

    monkeypatch.delenv("GINIE_LOOP", raising=False)
    assert cli._loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("GINIE_LOOP", "asyncio")
    assert cli._loop_factory() is None
