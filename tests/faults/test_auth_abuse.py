"""Abuse of authentication against a real server: repeated bad tokens from one address are
refused for a while (429 with Retry-After) without locking out other addresses, and no token
or exchange key ever appears in the server's output, even at debug level."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ginie_server.clock import ManualClock
from ginie_server.throttle import ThrottlePolicy
from tests.harness import ScriptedSource, ServerProcess, connect_client, running_server

DEFAULT = ThrottlePolicy()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_bad_tokens_from_one_address_are_refused_for_the_cooldown(tmp_path: Path) -> None:
    clock = ManualClock()
    async with (
        running_server(tmp_path, sources=[ScriptedSource()], clock=clock) as rs,
        httpx.AsyncClient(base_url=rs.url) as http,
    ):
        for _ in range(DEFAULT.max_failures):
            bad = await http.get("/api/pnl", headers=bearer(secrets.token_urlsafe(32)))
            assert bad.status_code == 401

        refused = await http.get("/api/pnl", headers=rs.auth())
        assert refused.status_code == 429
        assert refused.json() == {"error": "too_many_attempts"}
        assert refused.headers["Retry-After"] == str(DEFAULT.cooldown_ms // 1000)
        with pytest.raises(InvalidStatus) as upgrade:
            async with connect(rs.ws_url, additional_headers=rs.auth()):
                pass
        assert upgrade.value.response.status_code == 429
        assert (await http.get("/api/health")).status_code == 200

        clock.advance(DEFAULT.cooldown_ms - 1_000)
        later = await http.get("/api/pnl", headers=rs.auth())
        assert later.status_code == 429
        assert later.headers["Retry-After"] == "1"

        clock.advance(1_000)
        assert (await http.get("/api/pnl", headers=rs.auth())).status_code == 200
        async with connect_client(rs.ws_url, rs.token) as client:
            assert client.hello.user == "demo"


async def test_a_blocked_address_does_not_lock_out_another(tmp_path: Path) -> None:
    attacker = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        running_server(tmp_path, sources=[ScriptedSource()]) as rs,
        httpx.AsyncClient(base_url=rs.url, transport=attacker) as hostile,
        httpx.AsyncClient(base_url=rs.url) as friendly,
    ):
        for _ in range(DEFAULT.max_failures):
            assert (await hostile.get("/api/pnl", headers=bearer("guess"))).status_code == 401
        assert (await hostile.get("/api/pnl", headers=rs.auth())).status_code == 429
        assert (await friendly.get("/api/pnl", headers=rs.auth())).status_code == 200
        async with connect_client(rs.ws_url, rs.token) as client:
            assert client.hello.user == "demo"


async def test_missing_tokens_count_as_bad_ones(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, sources=[ScriptedSource()]) as rs,
        httpx.AsyncClient(base_url=rs.url) as http,
    ):
        for _ in range(DEFAULT.max_failures):
            assert (await http.get("/api/metrics")).status_code == 401
        assert (await http.get("/api/metrics", headers=rs.auth())).status_code == 429


# ---------------------------------------------------------------------------- secrets in output


API_KEY = "SENTINELAPIKEY" + secrets.token_hex(16)
API_SECRET = "SENTINELAPISECRET" + secrets.token_hex(16)


def token_command(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ginie_server", "token", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def exercise(url: str, ws_url: str, tokens: list[str], bad: list[str]) -> list[str]:
    """Use the server as clients would, with good and bad tokens; every answer body seen."""
    bodies: list[str] = []
    async with httpx.AsyncClient(base_url=url) as http:
        for token in tokens:
            for path in ("/api/snapshot", "/api/metrics", "/api/system/status", "/api/pnl"):
                answer = await http.get(path, headers=bearer(token))
                assert answer.status_code == 200
                bodies.append(answer.text)
            async with connect(ws_url, additional_headers=bearer(token)) as ws:
                bodies.append(str(await ws.recv()))
                await ws.send(json.dumps({"op": "subscribe", "topics": ["*"]}))
                bodies.append(str(await ws.recv()))
                for name in ("ginie.start", "ginie.stop", "no.such"):
                    command = {"op": "command", "id": name, "name": name, "args": {}}
                    await ws.send(json.dumps(command))
                await ws.send("{not json")
                async with asyncio.timeout(5):
                    answered = 0
                    while answered < 4:
                        text = str(await ws.recv())
                        bodies.append(text)
                        answered += json.loads(text)["type"] in ("ACK", "ERROR")
        for token in bad:
            answer = await http.get("/api/pnl", headers=bearer(token))
            assert answer.status_code in (401, 429)
            bodies.append(answer.text)
            with pytest.raises(InvalidStatus):
                async with connect(ws_url, additional_headers=bearer(token)):
                    pass
    return bodies


async def test_no_token_or_key_appears_in_any_output_at_debug_level(tmp_path: Path) -> None:
    db = tmp_path / "ginie.db"
    env = {"GINIE_BINANCE_API_KEY": API_KEY, "GINIE_BINANCE_API_SECRET": API_SECRET}
    server = ServerProcess(db, "--log-level", "debug", env=env)
    server.start()
    try:
        assert server.token is not None
        demo_token = server.token
        created = token_command(db, "create", "alice")
        assert created.returncode == 0, created.stderr
        alice_token = created.stdout.strip()
        assert created.stdout == alice_token + "\n"
        listed = token_command(db, "list")
        assert listed.returncode == 0, listed.stderr

        near_miss = demo_token[:-1] + ("A" if demo_token[-1] != "A" else "B")
        bad = [near_miss, secrets.token_urlsafe(32), alice_token[::-1], "x" * 200]
        bad += [secrets.token_urlsafe(32) for _ in range(ThrottlePolicy().max_failures)]
        bodies = await exercise(server.url, server.ws_url, [demo_token, alice_token], bad)
    finally:
        exit_code = server.stop()
    assert exit_code == 0

    stdout_lines = [*server.lines]
    while True:
        try:
            stdout_lines.append(server.read_line(timeout=1))
        except RuntimeError:
            break
    stderr = server.stderr()
    assert " DEBUG " in stderr, "the server did not log at debug level"

    secret_values = [demo_token, alice_token, API_KEY, API_SECRET, *bad]
    intended = f"demo token: {demo_token}"
    for secret in secret_values:
        assert secret not in stderr
        assert secret not in listed.stdout + listed.stderr + created.stderr
        leaking = [line for line in stdout_lines if secret in line and line != intended]
        assert leaking == []
        assert not any(secret in body for body in bodies)
    assert stdout_lines.count(intended) == 1
