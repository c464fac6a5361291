"""The per-connection command budget: the token bucket on its own, and on a real socket a
command over it answered `rate_limited` (once, not run), counted, and a flood closed 1008."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ginie_protocol.envelope import Ack, AckError, encode
from ginie_server.config import Limits
from ginie_server.ws import CommandBucket
from tests.harness import ProtocolClient, ScriptedSource, connect_client, running_server

TIGHT = Limits(command_rate=0.1, command_burst=3, command_flood_limit=4)
"""Three commands at once, then one every ten seconds; the fifth refusal in a minute closes."""


def test_the_bucket_gives_its_burst_then_says_when_the_next_token_comes() -> None:
    bucket = CommandBucket(rate=4.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 0.25
    assert bucket.take(100.125) == 0.125
    assert bucket.take(100.25) == 0.0
    assert bucket.take(100.25) == 0.25


def test_a_refused_command_spends_nothing_and_an_idle_bucket_fills_to_its_burst() -> None:
    bucket = CommandBucket(rate=8.0, burst=2, now=0.0)
    assert bucket.take(0.0) == bucket.take(0.0) == 0.0
    for _ in range(5):
        assert bucket.take(0.0625) == 0.0625
    assert bucket.take(0.125) == 0.0
    assert [bucket.take(3600.0) for _ in range(3)] == [0.0, 0.0, 0.125]


def test_an_ack_without_a_retry_time_encodes_as_before() -> None:
    ack = Ack(id="c-1", ok=False, error=AckError(code="not_found", message="no signal S1"))
    assert encode(ack) == (
        '{"type":"ACK","id":"c-1","ok":false,"error":{"code":"not_found","message":"no signal S1"}}'
    )


async def send_commands(client: ProtocolClient, count: int) -> list[Ack]:
    """Send `count` ginie.start commands at once; their ACKs, in order."""
    for n in range(count):
        await client.send_json({"op": "command", "id": f"c{n}", "name": "ginie.start"})
    return [await client.recv_until(lambda m: m.type == "ACK") for _ in range(count)]


async def test_a_command_over_the_budget_is_answered_rate_limited_and_not_run(
    tmp_path: Path,
) -> None:
    scripted = ScriptedSource()
    async with (
        running_server(tmp_path, sources=[scripted], limits=TIGHT) as rs,
        connect_client(rs.ws_url, rs.token) as client,
    ):
        await client.subscribe(["*"])
        acks = await send_commands(client, 4)
        assert [a.ok for a in acks] == [True, True, True, False]
        refused = acks[3]
        assert refused.id == "c3" and refused.error is not None
        assert refused.error.code == "rate_limited"
        retry = refused.error.retry_after_ms
        assert retry is not None and 9_000 < retry <= 10_000
        assert refused.error.message.endswith(f"retry in {retry} ms")
        assert rs.hub.current_seq("demo") == 3, "one STATS_UPDATE per command run"

        async with httpx.AsyncClient(base_url=rs.url) as http:
            metrics = (await http.get("/api/metrics", headers=rs.auth())).json()
        assert (metrics["commands"], metrics["commands_refused"]) == (3, 1)
        assert metrics["errors"] == 0


async def test_a_connection_that_keeps_flooding_is_closed_1008(tmp_path: Path) -> None:
    scripted = ScriptedSource()
    async with running_server(tmp_path, sources=[scripted], limits=TIGHT) as rs:
        async with connect_client(rs.ws_url, rs.token) as client:
            acks = await send_commands(client, 7)
            assert [a.ok for a in acks] == [True] * 3 + [False] * 4
            await client.send_json({"op": "command", "id": "last", "name": "ginie.start"})
            last = await client.recv()
            assert isinstance(last, Ack) and last.id == "last" and last.error is not None
            assert last.error.code == "rate_limited"
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert closed.value.rcvd.reason == "too many commands"
        assert rs.hub.metrics("demo").commands_refused == 5
        async with connect_client(rs.ws_url, rs.token) as again:
            assert (await send_commands(again, 1))[0].ok, "a new connection has a new budget"
