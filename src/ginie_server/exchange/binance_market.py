"""Binance's public market data of the exchange's symbols: recent 1m klines by REST at start,
then two combined streams (mark price and 1m klines; partial depth), the latest of each kept
and every update told to the listener."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any

from ginie_protocol.events import Kline, MarkPrice, OrderBook
from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import ExchangeListener
from ginie_server.exchange.binance_health import LinkHealth
from ginie_server.exchange.binance_rest import BinanceRest
from ginie_server.exchange.binance_streams import Session, StreamSockets

log = logging.getLogger("ginie_server.exchange.binance")

KEPT_KLINES = 500


class MarketFeed:
    """Mark prices, candles and order books of `symbols`, as Binance last streamed them."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        rest: BinanceRest,
        sockets: StreamSockets,
        health: LinkHealth,
        *,
        kline_history: int,
        depth_levels: int,
        stopping: asyncio.Event,
    ) -> None:
        self.listener: ExchangeListener | None = None
        self._symbols = symbols
        self._rest = rest
        self._sockets = sockets
        self._health = health
        self._kline_history = kline_history
        self._depth_levels = depth_levels
        self._stopping = stopping
        self._marks: dict[str, MarkPrice] = {}
        self._klines: dict[str, deque[Kline]] = {s: deque(maxlen=KEPT_KLINES) for s in symbols}
        self._books: dict[str, OrderBook] = {}

    def mark_price(self, symbol: str) -> MarkPrice | None:
        return self._marks.get(symbol)

    def mark_prices(self) -> dict[str, float]:
        return {symbol: mark.mark_price for symbol, mark in self._marks.items()}

    def klines(self, symbol: str) -> list[Kline]:
        return list(self._klines.get(symbol, ()))

    def order_book(self, symbol: str) -> OrderBook | None:
        return self._books.get(symbol)

    async def load_history(self) -> None:
        """Read the last `kline_history` 1m candles of every symbol by REST."""
        client = self._rest.client
        for symbol in self._symbols:
            rows = await self._rest.call(
                client.futures_klines, symbol=symbol, interval="1m", limit=self._kline_history
            )
            self._klines[symbol].extend(mapping.rest_klines(symbol, rows))

    def sessions(self) -> dict[str, Session]:
        """The market streams by name, each a session to supervise."""
        prices = [
            name
            for symbol in self._symbols
            for name in (f"{symbol.lower()}@markPrice@1s", f"{symbol.lower()}@kline_1m")
        ]
        depth = [f"{s.lower()}@depth{self._depth_levels}@100ms" for s in self._symbols]
        return {
            "mark price and klines": partial(self._session, "market", prices),
            "depth": partial(self._session, "public", depth),
        }

    async def _session(self, category: str, streams: list[str]) -> None:
        """One life of a combined market stream."""
        socket = self._sockets.multiplex(streams, category)
        try:
            await socket.__aenter__()
            while not self._stopping.is_set():
                message = await socket.recv()
                if isinstance(message, Mapping) and message.get("e") == "error":
                    log.warning("Binance %s stream dropped: %s", category, message.get("m"))
                    return
                self._on_message(message)
        finally:
            await self._sockets.close(socket)

    def _on_message(self, message: Any) -> None:
        try:
            data = mapping.market_event(message)
        except mapping.BinancePayloadError as error:
            self._health.count_malformed(error)
            return
        if isinstance(data, MarkPrice):
            self._marks[data.symbol] = data
        elif isinstance(data, Kline):
            candles = self._klines.setdefault(data.symbol, deque(maxlen=KEPT_KLINES))
            if candles and candles[-1].open_time == data.open_time:
                candles[-1] = data
            elif not candles or candles[-1].open_time < data.open_time:
                candles.append(data)
        else:
            self._books[data.symbol] = data
        if self.listener is not None:
            self.listener.on_market(data)
