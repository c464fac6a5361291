"""Acceptance 3: two users at once, thousands of events, and neither sees the other's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ginie_protocol.events import Balance, LifecycleEvent
from tests.harness import ProtocolClient, RunningServer, ScriptedSource, connect_client, wait_for

EVENTS_PER_USER = 2_000


def balance(owner: str, n: int) -> Balance:
    return Balance(asset=f"{owner}-{n}", wallet_balance=n, available_balance=n, updated_at=n)


def lifecycle(owner: str, n: int) -> LifecycleEvent:
    return LifecycleEvent(
        id=n, chain_id=f"{owner}-chain", symbol="BTCUSDT", step="entry", message=owner, time=n
    )


async def collect(client: ProtocolClient, into: list[Any]) -> None:
    while True:
        into.extend(await client.user_events(1, timeout=30))


async def test_two_users_never_receive_or_see_each_others_data(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    tokens = {"alice": server.create_token("alice"), "bob": server.create_token("bob")}
    received: dict[str, list[Any]] = {"alice": [], "bob": [], "alice2": []}
    async with (
        connect_client(server.ws_url, tokens["alice"]) as alice,
        connect_client(server.ws_url, tokens["alice"]) as alice2,
        connect_client(server.ws_url, tokens["bob"]) as bob,
    ):
        clients = {"alice": alice, "alice2": alice2, "bob": bob}
        for client in clients.values():
            await client.subscribe(["*"])
        readers = [asyncio.create_task(collect(c, received[n])) for n, c in clients.items()]
        for n in range(EVENTS_PER_USER):
            scripted.emit("alice", balance("alice", n) if n % 10 else lifecycle("alice", n))
            scripted.emit("bob", balance("bob", n) if n % 10 else lifecycle("bob", n))
            if n % 250 == 249:
                await wait_for(lambda n=n: all(len(r) > n for r in received.values()), 10)
        await wait_for(lambda: all(len(r) == EVENTS_PER_USER for r in received.values()), 10)
        for reader in readers:
            reader.cancel()
    for name, events in received.items():
        owner = name.removesuffix("2")
        assert [e.seq for e in events] == list(range(1, EVENTS_PER_USER + 1))
        for event in events:
            mine = event.data.asset if event.type == "BALANCE_UPDATE" else event.data.message
            assert mine.startswith(owner), (name, event)

    async with httpx.AsyncClient(base_url=server.url) as http:
        for owner, other in (("alice", "bob"), ("bob", "alice")):
            headers = server.auth(tokens[owner])
            balances = (await http.get("/api/futures/balances", headers=headers)).json()
            assert len(balances["data"]) == EVENTS_PER_USER * 9 // 10
            assert all(b["asset"].startswith(owner) for b in balances["data"])
            events = (
                await http.get("/api/futures/trade-events?limit=1000", headers=headers)
            ).json()
            assert len(events["data"]) == EVENTS_PER_USER // 10
            assert {e["message"] for e in events["data"]} == {owner}
            snapshot = (await http.get("/api/snapshot", headers=headers)).json()
            assert snapshot["seq"] == EVENTS_PER_USER
            assert other not in str(snapshot["data"])
            metrics = (await http.get("/api/metrics", headers=headers)).json()
            assert metrics["user"] == owner
    assert sorted(scripted.attached) == ["alice", "bob", "demo"]
