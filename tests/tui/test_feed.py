"""The feed's protocol handling against a scripted WebSocket server on 127.0.0.1 (real
websockets and httpx): malformed frames are reported and skipped, a gap resumes from the last
seq on the same socket, RESYNC fetches one snapshot, commands are matched to their ACK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from ginie_protocol import Topic, encode, make_event
from ginie_tui.connection import ConnectionStatus
from ginie_tui.feed import CommandRefused, Feed, FeedSettings
from ginie_tui.store import Change, Store
from tests.harness import wait_for
from tests.tui.dataset import HISTORY, T0, kline_history
from tests.tui.test_store import signal

EPOCH = "E1"


def event(n: int) -> str:
    return encode(make_event(signal(n), ts=T0, seq=n, epoch=EPOCH))


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.statuses: list[ConnectionStatus] = []
        self.problems: list[str] = []

    def feed_changes(self, changes: list[Change]) -> None:
        self.changes.extend(changes)

    def feed_status(self, status: ConnectionStatus) -> None:
        self.statuses.append(status)

    def feed_problem(self, text: str) -> None:
        self.problems.append(text)


class ScriptedServer:
    """Answers HELLO, then each subscribe with SUBSCRIBED and the next scripted frames."""

    def __init__(self, scripts: list[list[str]], snapshot_seq: int = 0) -> None:
        self.scripts = scripts
        self.subscribes: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.snapshot_calls = 0
        self.connections = 0
        self.snapshot_seq = snapshot_seq
        self.after_resync: list[str] = []
        self.market_calls: list[str] = []
        self.sockets: list[ServerConnection] = []

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/api/snapshot"):
            self.snapshot_calls += 1
            data = {"SIGNAL_UPDATE": [signal(self.snapshot_seq).model_dump()]}
            body = {"epoch": EPOCH, "seq": self.snapshot_seq, "data": data}
            return connection.respond(200, json.dumps(body))
        if request.path.startswith("/api/market/"):
            symbol = request.path.removeprefix("/api/market/")
            self.market_calls.append(symbol)
            if symbol == "BADUSDT":
                return connection.respond(200, "not json")
            klines = [k.model_dump() for k in kline_history(symbol)]
            body = {"epoch": EPOCH, "seq": 0, "data": {"FUTURES_KLINE_UPDATE": klines}}
            return connection.respond(200, json.dumps(body))
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.sockets.append(ws)
        hello = {"type": "HELLO", "protocol": 1, "user": "u", "epoch": EPOCH, "seq": 0}
        await ws.send(json.dumps({**hello, "server_time": T0}))
        async for raw in ws:
            message = json.loads(raw)
            if message["op"] == "command":
                self.commands.append(message)
                ack = {"type": "ACK", "id": message["id"], "ok": True, "result": {"n": 1}}
                await ws.send(json.dumps(ack))
                continue
            self.subscribes.append(message)
            await ws.send(json.dumps({"type": "SUBSCRIBED", "topics": ["*"], "resumed": True}))
            for frame in self.scripts.pop(0) if self.scripts else []:
                await ws.send(frame)


@asynccontextmanager
async def scripted(server: ScriptedServer) -> AsyncIterator[str]:
    async with serve(
        server.handler, "127.0.0.1", 0, process_request=server.process_request
    ) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def running_feed(url: str) -> AsyncIterator[tuple[Feed, Store, Recorder]]:
    feed = Feed(FeedSettings(url=url, token="t", ping_interval_s=0.2, seed=1))
    store, recorder = Store(), Recorder()
    task = asyncio.create_task(feed.run(store, recorder))
    try:
        yield feed, store, recorder
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_malformed_frames_are_reported_and_the_feed_carries_on() -> None:
    server = ScriptedServer([[event(1), "not json", '{"type": "NOPE"}', "[1]", event(2)]])
    async with scripted(server) as url, running_feed(url) as (feed, store, recorder):
        await wait_for(lambda: store.seq == 2)
        assert len([p for p in recorder.problems if p.startswith("malformed")]) == 3
        assert server.connections == 1
        assert feed.status().live


async def test_a_gap_resumes_from_the_last_seq_on_the_same_socket() -> None:
    server = ScriptedServer([[event(1), event(3)], [event(2), event(3), event(4)]])
    async with scripted(server) as url, running_feed(url) as (_, store, _rec):
        await wait_for(lambda: store.seq == 4)
        assert server.subscribes[0]["resume"] == {"epoch": EPOCH, "seq": 0}
        assert server.subscribes[1]["resume"] == {"epoch": EPOCH, "seq": 1}
        assert server.connections == 1
        assert [s.signal_id for s in store.items(Topic.SIGNAL_UPDATE)][-3:] == ["s-2", "s-3", "s-4"]


async def test_resync_fetches_one_snapshot_and_goes_on_live() -> None:
    resync = json.dumps({"type": "RESYNC", "epoch": EPOCH, "seq": 9, "reason": "too old"})
    server = ScriptedServer([[resync, event(10), event(11)]], snapshot_seq=9)
    async with scripted(server) as url, running_feed(url) as (_, store, _rec):
        await wait_for(lambda: store.seq == 11)
        assert server.snapshot_calls == 2, "the start-up snapshot and one for the RESYNC"
        assert store.get(Topic.SIGNAL_UPDATE, "s-9") is not None


async def test_commands_are_answered_by_their_ack_and_refused_when_not_live() -> None:
    server = ScriptedServer([[]])
    async with scripted(server) as url:
        idle = Feed(FeedSettings(url=url, token="t"))
        with pytest.raises(CommandRefused, match="read-only"):
            await idle.command("ginie.stop", {})
        async with running_feed(url) as (feed, _store, _rec):
            await wait_for(lambda: feed.status().live)
            with pytest.raises(CommandRefused, match="mode"):
                await feed.command("mode.pause", {"mode": "yolo"})
            ack = await feed.command("ginie.stop", {})
            assert ack.ok and ack.result == {"n": 1}
            assert server.commands == [
                {"op": "command", "id": ack.id, "name": "ginie.stop", "args": {}}
            ]
            await wait_for(lambda: feed.status().latency_ms is not None)


async def test_a_shown_symbol_is_fetched_once_per_connection_and_again_after_a_resync() -> None:
    server = ScriptedServer([[], [event(10)]], snapshot_seq=9)
    async with scripted(server) as url, running_feed(url) as (feed, store, recorder):
        feed.show_market("BTCUSDT")
        await wait_for(lambda: len(store.klines("BTCUSDT")) == HISTORY)
        feed.show_market("BTCUSDT")
        feed.show_market("ETHUSDT")
        await wait_for(lambda: len(store.klines("ETHUSDT")) == HISTORY)
        assert server.market_calls == ["BTCUSDT", "ETHUSDT"]
        assert any(c.topic == Topic.FUTURES_KLINE_UPDATE for c in recorder.changes)

        resync = json.dumps({"type": "RESYNC", "epoch": EPOCH, "seq": 9, "reason": "too old"})
        await server.sockets[0].send(resync)
        await wait_for(lambda: len(server.market_calls) == 4)
        assert sorted(server.market_calls[2:]) == ["BTCUSDT", "ETHUSDT"]

        await server.sockets[0].close()
        await wait_for(lambda: len(server.market_calls) == 6 and store.seq == 10, timeout=10)
        assert sorted(server.market_calls[4:]) == ["BTCUSDT", "ETHUSDT"], "a new connection"
        assert server.snapshot_calls == 2, "the start-up snapshot and the RESYNC, no timer"


async def test_a_market_answer_that_is_not_json_is_reported() -> None:
    server = ScriptedServer([[]])
    async with scripted(server) as url, running_feed(url) as (feed, store, recorder):
        feed.show_market("BADUSDT")
        await wait_for(lambda: any("BADUSDT" in p for p in recorder.problems))
        assert store.klines("BADUSDT") == []
        assert feed.status().live
