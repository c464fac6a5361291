"""End to end on the paper exchange: a real server, real WebSocket and HTTP clients.

- A client subscribed to `*` sees all twenty event types, with commands provoking a few.
- A server killed (SIGKILL) mid-trade comes back on the same database with its orders,
  positions, chains, lifecycle events and P&L, and its REST snapshots agree with the events
  a client saw.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ginie_protocol.envelope import Ack, ResumePoint
from ginie_protocol.events import (
    EVENT_TYPES,
    KEY_FIELD,
    MARKET_TYPES,
    USER_TYPES,
)
from tests.harness import ProtocolClient, ServerProcess, connect_client, running_server

SPEED = "600"
"""Ten market minutes a second: the autopilot trades within seconds."""


class Feed:
    """Everything one client received, with a client-side store applied by `seq`."""

    def __init__(self, client: ProtocolClient) -> None:
        self.client = client
        self.types: set[str] = set()
        self.acks: dict[str, Ack] = {}
        self.seq = 0
        self.events: list[Any] = []
        self.store: dict[str, dict[str, Any]] = {}
        self._next_id = 0

    async def pump_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Read messages until `done()`; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not done():
                self.take(await self.client.recv(timeout))

    def take(self, message: Any) -> None:
        if isinstance(message, Ack):
            self.acks[message.id] = message
            return
        kind = getattr(message, "type", "")
        if kind not in EVENT_TYPES:
            return
        self.types.add(kind)
        if kind in MARKET_TYPES:
            return
        assert message.seq == self.seq + 1, f"gap or repeat: {self.seq} then {message.seq}"
        self.seq = message.seq
        self.events.append(message)
        key_field = KEY_FIELD[kind]
        key = str(getattr(message.data, key_field)) if key_field else ""
        self.store.setdefault(kind, {})[key] = message.data.model_dump(mode="json")

    async def command(self, name: str, **args: Any) -> Ack:
        self._next_id += 1
        command_id = f"c-{self._next_id}"
        await self.client.send_json({"op": "command", "id": command_id, "name": name, "args": args})
        await self.pump_until(lambda: command_id in self.acks)
        return self.acks[command_id]

    def latest(self, kind: str) -> list[Any]:
        return [e.data for e in self.events if e.type == kind]


async def test_a_client_sees_all_twenty_event_types(tmp_path: Path) -> None:
    async with running_server(tmp_path, speed=float(SPEED), seed=4) as server:
        async with connect_client(server.ws_url, server.token) as client:
            feed = Feed(client)
            await client.subscribe(["*"], resume=ResumePoint(epoch=client.hello.epoch, seq=0))
            rules = await feed.command(
                "autopilot.set_rules", max_consecutive_losses=4, min_confidence=0.55
            )
            assert rules.ok and rules.result is not None
            assert rules.result["changed"] == ["max_consecutive_losses", "min_confidence"]
            paused = await feed.command("mode.pause", mode="position", minutes=30)
            assert paused.ok and paused.result == {
                "mode": "position",
                "status": "paused",
                "paused_until": paused.result["paused_until"],
            }
            reset = await feed.command("circuit_breaker.reset")
            assert reset.ok and reset.result == {"state": "ok", "was": "ok"}

            def open_chain() -> dict[str, Any] | None:
                chains = feed.store.get("CHAIN_UPDATE", {}).values()
                return next((c for c in chains if c["status"] == "open"), None)

            await feed.pump_until(lambda: open_chain() is not None)
            chain = open_chain()
            assert chain is not None
            closed = await feed.command("position.close", symbol=chain["symbol"])
            assert closed.ok, closed.error
            assert closed.result == {
                "symbol": chain["symbol"],
                "client_order_id": f"g-{chain['chain_id']}-X",
            }
            await feed.pump_until(
                lambda: (
                    feed.store["CHAIN_UPDATE"][chain["chain_id"]]["status"] == "closed"
                    and feed.types >= set(EVENT_TYPES)
                )
            )
            assert feed.store["CHAIN_UPDATE"][chain["chain_id"]]["close_reason"] == "manual_close"
            missing = await feed.command("order.cancel", client_order_id="g-C999-SL")
            assert not missing.ok and missing.error is not None
            assert missing.error.code == "not_found"
    assert feed.types == set(EVENT_TYPES)


async def test_killed_mid_trade_the_server_comes_back_as_it_was(tmp_path: Path) -> None:
    db_path = tmp_path / "ginie.db"
    first = ServerProcess(db_path, "--exchange", "paper", "--speed", SPEED, "--seed", "4")
    with first:
        assert first.token is not None
        token = first.token
        async with connect_client(first.ws_url, token) as client:
            feed = Feed(client)
            epoch = client.hello.epoch
            await client.subscribe(["*"], resume=ResumePoint(epoch=epoch, seq=0))

            def mid_trade() -> bool:
                chains = feed.store.get("CHAIN_UPDATE", {}).values()
                positions = feed.store.get("POSITION_UPDATE", {})
                return any(
                    c["status"] in ("open", "partially_closed")
                    and positions.get(c["symbol"], {}).get("size", 0) != 0
                    for c in chains
                )

            await feed.pump_until(mid_trade)
            first.stop(signal.SIGKILL)

    second = ServerProcess(db_path, "--exchange", "paper", "--speed", "0.001", "--seed", "4")
    with second:
        async with connect_client(second.ws_url, token) as client:
            feed.client = client
            assert client.hello.epoch == epoch
            resume = ResumePoint(epoch=epoch, seq=feed.seq)
            subscribed = await client.subscribe(["*"], resume=resume)
            assert subscribed.resumed
            committed = feed.seq + subscribed.replayed
            await feed.pump_until(lambda: feed.seq >= committed, 10.0)
            before = {kind: dict(items) for kind, items in feed.store.items()}
            seen_lifecycle = [e for e in feed.events if e.type == "LIFECYCLE_EVENT"]
            topics = ",".join(sorted(USER_TYPES - {"LIFECYCLE_EVENT"}))
            async with httpx.AsyncClient(
                base_url=second.url, headers={"Authorization": f"Bearer {token}"}
            ) as http:
                answer = (await http.get("/api/snapshot", params={"topics": topics})).json()
                events = (
                    await http.get("/api/futures/trade-events", params={"limit": 1000})
                ).json()
            assert answer["epoch"] == epoch
            await feed.pump_until(lambda: feed.seq >= answer["seq"], 10.0)
            assert feed.seq == answer["seq"], "nothing moves at this speed after the snapshot"

    for kind in sorted(USER_TYPES - {"LIFECYCLE_EVENT"}):
        payload = answer["data"][kind]
        key_field = KEY_FIELD[kind]
        if key_field is None:
            assert feed.store[kind][""] == payload, kind
        else:
            assert {str(item[key_field]): item for item in payload} == feed.store[kind], kind

    for chain_id, chain in before["CHAIN_UPDATE"].items():
        assert feed.store["CHAIN_UPDATE"][chain_id] == chain
    for symbol, position in before["POSITION_UPDATE"].items():
        now = feed.store["POSITION_UPDATE"][symbol]
        assert (now["size"], now["entry_price"]) == (position["size"], position["entry_price"])
    for order_id, order in before["ORDER_UPDATE"].items():
        assert feed.store["ORDER_UPDATE"][order_id] == order
    pnl_before, pnl_after = before["PNL_UPDATE"][""], feed.store["PNL_UPDATE"][""]
    for field in ("realized_total", "fees_total", "wins", "losses"):
        assert pnl_after[field] == pnl_before[field], field
    rows = {row["id"]: row for row in events["data"]}
    for seen in seen_lifecycle:
        assert rows[seen.data.id] == {**seen.data.model_dump(mode="json"), "seq": seen.seq}
    starts = {status.started_at for status in feed.latest("SYSTEM_STATUS_UPDATE")}
    assert len(starts) == 2, "each start of the engine is told to the user"
