"""The REST door: every snapshot path, the multi-topic snapshot, paging, market data and the
caller's own metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ginie_protocol import KEY_FIELD, SNAPSHOT_PATH
from ginie_protocol.events import Balance, LifecycleEvent, Stats
from tests.harness import RunningServer, ScriptedSource, connect_client, running_server


async def get(server: RunningServer, path: str) -> Any:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get(path, headers=server.auth())
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_every_snapshot_path_answers_epoch_seq_and_data(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    scripted.emit(
        "demo", Balance(asset="USDT", wallet_balance=9, available_balance=9, updated_at=1)
    )
    scripted.emit("demo", Stats(total_trades=3))
    for topic, path in SNAPSHOT_PATH.items():
        body = await get(server, path)
        assert set(body) == {"epoch", "seq", "data"}
        assert body["epoch"] == server.hub.epoch and body["seq"] == 2
        if KEY_FIELD[topic] is None:
            assert body["data"] is None or isinstance(body["data"], dict), topic
        else:
            assert isinstance(body["data"], list), topic
    assert (await get(server, "/api/futures/balances"))["data"][0]["wallet_balance"] == 9
    assert (await get(server, "/api/stats"))["data"]["total_trades"] == 3
    assert (await get(server, "/api/pnl"))["data"] is None


async def test_trade_events_page_back_newest_first(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    for n in range(1, 26):
        scripted.emit(
            "demo",
            LifecycleEvent(id=n, chain_id="c", symbol="ETHUSDT", step="s", message="m", time=n),
        )
    first = await get(server, "/api/futures/trade-events?limit=10")
    assert [e["id"] for e in first["data"]] == list(range(25, 15, -1))
    assert first["data"][0]["seq"] == 25 and first["seq"] == 25
    before = first["data"][-1]["seq"]
    older = await get(server, f"/api/futures/trade-events?limit=10&before_seq={before}")
    assert [e["id"] for e in older["data"]] == list(range(15, 5, -1))
    default = await get(server, "/api/futures/trade-events")
    assert len(default["data"]) == 25


async def test_snapshot_gives_many_topics_in_one_call_and_metrics_count_it(
    server: RunningServer, scripted: ScriptedSource
) -> None:
    scripted.emit("demo", Stats(total_trades=1))
    body = await get(server, "/api/snapshot?topics=STATS_UPDATE,POSITION_UPDATE")
    assert body["seq"] == 1
    assert body["data"] == {
        "STATS_UPDATE": Stats(total_trades=1).model_dump(),
        "POSITION_UPDATE": [],
    }
    everything = await get(server, "/api/snapshot")
    assert len(everything["data"]) == 20
    async with connect_client(server.ws_url, server.token) as client:
        await client.subscribe(["*"])
        scripted.emit("demo", Stats(total_trades=2))
        await client.user_events(1)
    metrics = await get(server, "/api/metrics")
    assert metrics["user"] == "demo"
    assert metrics["rest_calls"]["/api/snapshot"] == 2
    assert metrics["ws_connections"] == 1 and metrics["events_sent"] == 1
    assert metrics["slow_consumer_closes"] == 0 and metrics["resyncs"] == 0


async def test_a_started_server_streams_public_mark_prices(tmp_path: Path) -> None:
    async with running_server(tmp_path, speed=50.0) as server:
        async with connect_client(server.ws_url, server.token) as client:
            await client.subscribe(["FUTURES_MARK_PRICE_UPDATE"], symbols=["ETHUSDT"])
            ticks = [
                await client.recv_until(lambda m: m.type == "FUTURES_MARK_PRICE_UPDATE")
                for _ in range(3)
            ]
        assert {t.data.symbol for t in ticks} == {"ETHUSDT"}
        assert all(t.seq is None and t.epoch is None for t in ticks)
        market = await get(server, "/api/market/ETHUSDT")
        mark = market["data"]["FUTURES_MARK_PRICE_UPDATE"]
        assert mark["symbol"] == "ETHUSDT" and mark["mark_price"] > 0
        assert isinstance(market["data"]["FUTURES_KLINE_UPDATE"], list)
        snapshot = await get(server, "/api/snapshot?topics=FUTURES_MARK_PRICE_UPDATE")
        marks = snapshot["data"]["FUTURES_MARK_PRICE_UPDATE"]
        symbols = [m["symbol"] for m in marks]
        assert "ETHUSDT" in symbols and symbols == sorted(set(symbols))
        assert all(m["mark_price"] > 0 for m in marks)
        unknown = await get(server, "/api/market/NOSUCHCOIN")
        assert unknown["data"]["FUTURES_MARK_PRICE_UPDATE"] is None
