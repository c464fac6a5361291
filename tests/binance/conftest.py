"""Fixtures: the Binance double on 127.0.0.1 and a BinanceExchange (real python-binance) on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from binance import AsyncClient
from ginie_protocol.events import (
    ApiHealth,
    Balance,
    Kline,
    MarkPrice,
    Order,
    OrderBook,
    Position,
    Trade,
)
from ginie_server.clock import ManualClock
from ginie_server.exchange.binance import BinanceExchange
from tests.binance.double import BinanceDouble


@dataclass
class Recorder:
    """An ExchangeListener that keeps everything it is told."""

    orders: list[Order] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    balances: list[Balance] = field(default_factory=list)
    market: list[MarkPrice | Kline | OrderBook] = field(default_factory=list)
    health: list[ApiHealth] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    account: list[Order | Trade | Position] = field(default_factory=list)
    """Orders, trades and positions in the order they were reported."""

    def on_order(self, user: str, order: Order) -> None:
        self.users.add(user)
        self.orders.append(order)
        self.account.append(order)

    def on_trade(self, user: str, trade: Trade) -> None:
        self.users.add(user)
        self.trades.append(trade)
        self.account.append(trade)

    def on_position(self, user: str, position: Position) -> None:
        self.users.add(user)
        self.positions.append(position)
        self.account.append(position)

    def on_balance(self, user: str, balance: Balance) -> None:
        self.users.add(user)
        self.balances.append(balance)

    def on_market(self, data: MarkPrice | Kline | OrderBook) -> None:
        self.market.append(data)

    def on_health(self, health: ApiHealth) -> None:
        self.health.append(health)

    def order_states(self, client_order_id: str) -> list[str]:
        return [o.status for o in self.orders if o.client_order_id == client_order_id]


def chain_of(client_order_id: str) -> str | None:
    """Test chain ids: `gx-<chain>-<leg>`."""
    parts = client_order_id.split("-")
    return parts[1] if client_order_id.startswith("gx-") and len(parts) == 3 else None


@pytest.fixture
async def double() -> AsyncIterator[BinanceDouble]:
    server = BinanceDouble()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def manual_client(double: BinanceDouble) -> AsyncIterator[AsyncClient]:
    """Another python-binance client on the same account: changes made outside Ginie."""
    client = AsyncClient(double.api_key, double.api_secret)
    client.FUTURES_URL = double.futures_url
    yield client
    await client.close_connection()


ExchangeFactory = Callable[..., Awaitable[tuple[BinanceExchange, Recorder]]]


@pytest.fixture
async def make_exchange(double: BinanceDouble) -> AsyncIterator[ExchangeFactory]:
    started: list[BinanceExchange] = []

    async def make(**options: Any) -> tuple[BinanceExchange, Recorder]:
        settings: dict[str, Any] = {
            "chain_of": chain_of,
            "reconnect_delay_s": (0.02, 0.1),
            "rest_retry_s": (0.02, 0.1),
            "start_timeout_s": 5.0,
            "kline_history": 30,
        }
        settings.update(options)
        exchange = BinanceExchange(
            "alice",
            ("BTCUSDT", "ETHUSDT"),
            double.api_key,
            double.api_secret,
            double.futures_url,
            double.stream_url,
            False,
            ManualClock(),
            **settings,
        )
        recorder = Recorder()
        exchange.set_listener(recorder)
        await exchange.start()
        started.append(exchange)
        return exchange, recorder

    yield make
    for exchange in started:
        await exchange.stop()
