"""`--exchange binance` end to end: the real server, engine and python-binance against the double,
endpoints and keys from the environment."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from binance import AsyncClient
from ginie_protocol.events import SNAPSHOT_PATH, USER_TYPES
from ginie_server.engine import TradingEngine
from ginie_server.exchange import binance as binance_module
from ginie_server.exchange.binance import BinanceExchange
from tests.binance.double import BinanceDouble
from tests.harness import (
    ProtocolClient,
    RunningServer,
    connect_client,
    running_server,
    wait_for,
)


@pytest.fixture
async def binance_server(
    tmp_path: Path, double: BinanceDouble, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningServer]:
    monkeypatch.setenv("GINIE_BINANCE_API_KEY", double.api_key)
    monkeypatch.setenv("GINIE_BINANCE_API_SECRET", double.api_secret)
    monkeypatch.setenv("GINIE_BINANCE_FUTURES_URL", double.futures_url)
    monkeypatch.setenv("GINIE_BINANCE_STREAM_URL", double.stream_url)
    # The server's own exchange, with REST retries short enough for a test to wait for.
    monkeypatch.setattr(
        binance_module,
        "binance_exchange_from_env",
        functools.partial(binance_module.binance_exchange_from_env, rest_retry_s=(0.05, 0.5)),
    )
    async with running_server(tmp_path, exchange="binance", owner="demo", testnet=True) as rs:
        yield rs


async def place_manual_buy(manual: AsyncClient, client_order_id: str) -> dict[str, Any]:
    """A LIMIT buy of 0.002 BTCUSDT at 59,000 placed outside Ginie."""
    placed: dict[str, Any] = await manual.futures_create_order(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity="0.002",
        price="59000",
        timeInForce="GTC",
        newClientOrderId=client_order_id,
    )
    return placed


def exchange_of(rs: RunningServer) -> BinanceExchange:
    (engine,) = [s for s in rs.server.sources if isinstance(s, TradingEngine)]
    assert isinstance(engine.exchange, BinanceExchange)
    return engine.exchange


def shape(data: Any) -> Any:
    """What a snapshot payload looks like, without its values: a list, or an object's keys."""
    return "list" if isinstance(data, list) else sorted(data)


async def snapshot_shapes(rs: RunningServer) -> dict[str, Any]:
    shapes = {}
    async with httpx.AsyncClient(base_url=rs.url, headers=rs.auth()) as http:
        for topic, path in SNAPSHOT_PATH.items():
            answer = await http.get(path)
            assert answer.status_code == 200, (topic, answer.text)
            body = answer.json()
            assert set(body) == {"epoch", "seq", "data"}, topic
            shapes[topic] = shape(body["data"])
    return shapes


async def test_binance_server_serves_every_snapshot_from_the_account(
    tmp_path: Path, double: BinanceDouble, binance_server: RunningServer
) -> None:
    rs = binance_server
    exchange = exchange_of(rs)
    assert exchange.futures_url == double.futures_url
    binance_shapes = await snapshot_shapes(rs)
    (tmp_path / "paper").mkdir()
    async with running_server(tmp_path / "paper", exchange="paper") as paper:
        paper_shapes = await snapshot_shapes(paper)
    assert binance_shapes == paper_shapes
    async with httpx.AsyncClient(base_url=rs.url, headers=rs.auth()) as http:
        snapshot = (await http.get("/api/snapshot", params={"topics": ",".join(USER_TYPES)})).json()
        assert set(snapshot["data"]) == set(USER_TYPES)
        (usdt,) = snapshot["data"]["BALANCE_UPDATE"]
        assert (usdt["asset"], usdt["wallet_balance"]) == ("USDT", 10_000.0)
        health = (await http.get("/api/system/health")).json()["data"]
        assert health["exchange"] == "binance"


async def test_owner_sees_fills_made_during_a_user_stream_gap(
    double: BinanceDouble, binance_server: RunningServer, manual_client: AsyncClient
) -> None:
    rs = binance_server
    exchange = exchange_of(rs)
    async with connect_client(rs.ws_url, rs.token) as client:
        await client.subscribe(["ORDER_UPDATE", "TRADE_UPDATE"])
        placed = await place_manual_buy(manual_client, "manual-e2e")
        new = await client.recv_until(lambda m: m.type == "ORDER_UPDATE")
        assert (new.data.client_order_id, new.data.status) == ("manual-e2e", "NEW")

        double.block_user_streams()
        await double.rotate_listen_key()
        await wait_for(lambda: not exchange.user_stream_connected)
        await double.fill(placed["orderId"])
        double.unblock_user_streams()

        trade = await client.recv_until(lambda m: m.type == "TRADE_UPDATE", timeout=10)
        assert (trade.data.client_order_id, trade.data.quantity, trade.data.price) == (
            "manual-e2e",
            0.002,
            59_000.0,
        )
        await wait_for(lambda: exchange.reconciles == 2)
    async with httpx.AsyncClient(base_url=rs.url, headers=rs.auth()) as http:
        trades = (await http.get("/api/futures/trades")).json()["data"]
        orders = (await http.get("/api/futures/orders/all")).json()["data"]
    assert [t["client_order_id"] for t in trades] == ["manual-e2e"]
    assert {o["client_order_id"]: o["status"] for o in orders} == {"manual-e2e": "FILLED"}


async def test_missing_keys_are_a_clear_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GINIE_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("GINIE_BINANCE_API_SECRET", raising=False)
    with pytest.raises(Exception, match="GINIE_BINANCE_API_KEY") as caught:
        async with running_server(tmp_path, exchange="binance"):
            pass
    assert type(caught.value).__name__ == "ConfigError"


async def recv_both(
    client: ProtocolClient, first: Callable[[Any], bool], second: Callable[[Any], bool]
) -> tuple[Any, Any]:
    """The first message each predicate accepts, in whichever order they come."""
    found: dict[int, Any] = {}
    async with asyncio.timeout(10):
        while len(found) < 2:
            message = await client.recv()
            for index, accepts in enumerate((first, second)):
                if index not in found and accepts(message):
                    found[index] = message
    return found[0], found[1]


async def test_with_one_endpoint_failing_live_orders_flow_and_health_degrades_then_recovers(
    double: BinanceDouble, binance_server: RunningServer, manual_client: AsyncClient
) -> None:
    rs = binance_server
    failing = "/fapi/v3/positionRisk"

    def names_the_failure(detail: str | None) -> bool:
        return (detail or "").startswith(f"GET {failing}: HTTP 503")

    async with connect_client(rs.ws_url, rs.token) as client:
        await client.subscribe(
            ["ORDER_UPDATE", "TRADE_UPDATE", "HEALTH_UPDATE", "SYSTEM_STATUS_UPDATE"]
        )
        double.fail(failing, 503)
        await double.drop_user_streams()
        health, status = await recv_both(
            client,
            lambda m: m.type == "HEALTH_UPDATE" and names_the_failure(m.data.last_error),
            lambda m: m.type == "SYSTEM_STATUS_UPDATE" and m.data.exchange.status == "degraded",
        )
        assert health.data.status == "degraded"
        assert status.data.database.status == "ok"

        # The live stream goes on while the reconcile fails.
        placed = await place_manual_buy(manual_client, "manual-degraded")
        new = await client.recv_until(lambda m: m.type == "ORDER_UPDATE")
        assert (new.data.client_order_id, new.data.status) == ("manual-degraded", "NEW")
        await double.fill(placed["orderId"])
        trade, filled = await recv_both(
            client,
            lambda m: m.type == "TRADE_UPDATE",
            lambda m: m.type == "ORDER_UPDATE" and m.data.status == "FILLED",
        )
        assert (trade.data.client_order_id, trade.data.quantity) == ("manual-degraded", 0.002)
        assert filled.data.client_order_id == "manual-degraded"

        double.heal(failing)
        healthy, _ = await recv_both(
            client,
            lambda m: m.type == "HEALTH_UPDATE" and m.data.status == "ok",
            lambda m: m.type == "SYSTEM_STATUS_UPDATE" and m.data.exchange.status == "ok",
        )
        assert healthy.data.last_error is None
        assert exchange_of(rs).reconciled
