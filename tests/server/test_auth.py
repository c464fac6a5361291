"""Acceptance 2: without a live token there is no data and no upgrade, on REST and on /ws."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ginie_protocol.events import Balance
from tests.harness import RunningServer, ScriptedSource, connect_client

BAD_HEADERS = [
    {},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic ZGVtbzpkZW1v"},
    {"Authorization": "Bearer"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_rest_without_a_valid_token_is_401(
    server: RunningServer, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/api/futures/balances", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized"}
        assert (await http.get("/api/health")).status_code == 200


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_ws_without_a_valid_token_is_401_and_not_upgraded(
    server: RunningServer, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert b"unauthorized" in refused.value.response.body


async def test_a_revoked_token_stops_working_on_rest_and_ws(
    server: RunningServer, scripted: ScriptedSource, tmp_path: Path
) -> None:
    token = server.create_token("carol")
    scripted.emit(
        "carol", Balance(asset="USDT", wallet_balance=5, available_balance=5, updated_at=1)
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        ok = await http.get("/api/futures/balances", headers=server.auth(token))
        assert ok.status_code == 200 and ok.json()["data"][0]["wallet_balance"] == 5
        async with connect_client(server.ws_url, token) as client:
            assert client.hello.user == "carol"
        revoke = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "ginie_server",
                "token",
                "revoke",
                "carol",
                "--db",
                str(tmp_path / "ginie.db"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert revoke.returncode == 0, revoke.stderr
        refused = await http.get("/api/futures/balances", headers=server.auth(token))
        assert refused.status_code == 401
    with pytest.raises(InvalidStatus) as upgrade:
        async with connect(server.ws_url, additional_headers=server.auth(token)):
            pass
    assert upgrade.value.response.status_code == 401
    assert scripted.attached == ["demo", "carol"]  # every account opens at once, and stays
