"""Acceptance 7: bad frames, unknown ops, oversized frames, the error budget and bad HTTP
requests get the answers the contract gives, and the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ginie_protocol.envelope import Ack, Error, Subscribed
from ginie_protocol.events import Balance
from tests.harness import ProtocolClient, RunningServer, ScriptedSource, connect_client


async def expect_closed(client: ProtocolClient, code: int) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv_until(lambda _: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def still_served(server: RunningServer, scripted: ScriptedSource) -> None:
    """A fresh client subscribes and gets a new event; REST still answers."""
    async with connect_client(server.ws_url, server.token) as client:
        await client.subscribe(["BALANCE_UPDATE"])
        scripted.emit(
            "demo", Balance(asset="OK", wallet_balance=1, available_balance=1, updated_at=1)
        )
        (event,) = await client.user_events(1)
        assert event.data.asset == "OK"
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/pnl", headers=server.auth())).status_code == 200


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"op": "dance"}', "unknown op"),
        ('{"op": "subscribe", "topics": []}', "topics"),
        ('{"op": "subscribe", "topics": ["NOPE"]}', "unknown topic 'NOPE'"),
        ('{"op": "command", "name": "ginie.start"}', "id"),
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
    ],
)
async def test_a_bad_frame_gets_error_and_the_connection_stays_open(
    server: RunningServer, scripted: ScriptedSource, frame: str, fragment: str
) -> None:
    async with connect_client(server.ws_url, server.token) as client:
        await client.ws.send(frame)
        error = await client.recv()
        assert isinstance(error, Error) and error.code == "bad_request"
        assert fragment in error.message
        answer = await client.subscribe(["*"])
        assert isinstance(answer, Subscribed)
    await still_served(server, scripted)


async def test_commands_are_answered_once_each(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    async with (
        connect_client(server.ws_url, server.token) as client,
        connect_client(server.ws_url, server.token) as other,
    ):
        await client.subscribe(["STATS_UPDATE"])
        await other.subscribe(["STATS_UPDATE"])
        ok = await client.command("ginie.start", command_id="a")
        assert ok == Ack(id="a", ok=True, result={"started": True})
        for connection in (client, other):
            (stats,) = await connection.user_events(1)
            assert stats.type == "STATS_UPDATE" and stats.data.total_trades == 1
        bad_args = await client.command("mode.pause", {"mode": "hyper"}, command_id="b")
        assert not bad_args.ok and bad_args.error is not None
        assert bad_args.error.code == "bad_request" and "mode" in bad_args.error.message
        unknown = await client.command("launch.rocket", command_id="c")
        assert unknown.error is not None and unknown.error.code == "bad_request"
        missing = await client.command("ginie.stop", command_id="d")
        assert missing.error is not None and missing.error.code == "unavailable"
        await client.ws.send(json.dumps({"op": "subscribe", "topics": ["*"]}))
        assert isinstance(await client.recv(), Subscribed)


async def test_an_oversized_frame_closes_1009(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    async with connect_client(server.ws_url, server.token) as client:
        await client.ws.send(json.dumps({"op": "subscribe", "topics": ["*"], "x": "y" * 70_000}))
        await expect_closed(client, 1009)
    await still_served(server, scripted)


async def test_the_error_budget_closes_1008_past_twenty_in_a_minute(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    async with connect_client(server.ws_url, server.token) as client:
        for _ in range(20):
            await client.ws.send("nope")
            assert isinstance(await client.recv(), Error)
        await client.subscribe(["*"])
        await client.ws.send("one too many")
        assert isinstance(await client.recv(), Error)
        await expect_closed(client, 1008)
    assert server.hub.metrics("demo").errors == 21
    await still_served(server, scripted)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/futures/trade-events?limit=0", 400),
        ("/api/futures/trade-events?limit=1001", 400),
        ("/api/futures/trade-events?limit=ten", 400),
        ("/api/futures/trade-events?before_seq=-3", 400),
        ("/api/futures/trade-events?limit=5&limit=6", 400),
        ("/api/futures/trade-events?color=blue", 400),
        ("/api/futures/positions?x=1", 400),
        ("/api/snapshot?topics=NOPE", 400),
        ("/api/snapshot?topics=", 400),
        ("/api/snapshot?topics=PNL_UPDATE,,", 400),
        ("/api/snapshot?symbols=btc%21", 400),
        ("/api/market/btcusdt", 400),
        ("/api/market/", 400),
        ("/api/nothing", 404),
        ("/ws", 426),
        ("/", 404),
        ("/api/futures/trade-events?limit=1000&before_seq=5", 200),
    ],
)
async def test_bad_queries_and_unknown_paths_are_json_errors(
    server: RunningServer, path: str, status: int
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get(path, headers=server.auth())
    assert answer.status_code == status
    body = answer.json()
    if status != 200:
        assert body["error"] in ("bad_request", "not_found", "upgrade_required") and body["message"]


async def test_other_methods_get_405_and_bodies_get_the_door(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for method in ("DELETE", "PUT", "HEAD", "OPTIONS", "POST"):
            answer = await http.request(method, "/api/pnl", headers=server.auth())
            assert answer.status_code == 405
            if method != "HEAD":
                assert answer.json()["error"] == "method_not_allowed"
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/api/pnl", headers=server.auth(), content=b'{"a": 1}')
    reader, writer = await asyncio.open_connection(server.server.host, server.server.port)
    writer.write(b"GARBAGE\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    await still_served(server, scripted)
