"""Binance's order filters (tick, step, minimum quantity and notional, max leverage), read from
exchangeInfo and the leverage brackets at start and again every `refresh_s`."""

from __future__ import annotations

import asyncio
import logging

from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import ExchangeError, SymbolFilters
from ginie_server.exchange.binance_rest import BinanceRest

log = logging.getLogger("ginie_server.exchange.binance")


class FilterBook:
    """The order filters of every symbol Binance describes, kept fresh."""

    def __init__(self, rest: BinanceRest, *, refresh_s: float, stopping: asyncio.Event) -> None:
        self._rest = rest
        self._refresh_s = refresh_s
        self._stopping = stopping
        self._filters: dict[str, SymbolFilters] = {}

    def get(self, symbol: str) -> SymbolFilters | None:
        return self._filters.get(symbol)

    async def load(self) -> None:
        """Read the order filters: exchangeInfo, and the leverage brackets for the maximum
        leverage (kept from the last read when the brackets cannot be had). exchangeInfo also
        gives the request weight limit."""
        client = self._rest.client
        info = await self._rest.call(client.futures_exchange_info)
        try:
            brackets = await self._rest.call(client.futures_leverage_bracket)
            max_leverage = self._rest.map("leverage brackets", mapping.leverage_brackets, brackets)
        except ExchangeError as error:
            log.warning("Binance leverage brackets unavailable: %s", error.message)
            max_leverage = {
                f.symbol: f.max_leverage for f in self._filters.values() if f.max_leverage
            }
        self._filters = self._rest.map(
            "exchange info", mapping.symbol_filters, info, max_leverage=max_leverage
        )
        weight_limit = self._rest.map("exchange info", mapping.request_weight_limit, info)
        if weight_limit is not None:
            self._rest.rate_limits.weight_limit = weight_limit

    async def refresh(self) -> None:
        """Read the order filters again every `refresh_s`; a failed read keeps the filters
        known and is tried at the next turn."""
        while not self._stopping.is_set():
            await asyncio.sleep(self._refresh_s)
            await self._rest.wait_allowed()
            try:
                await self.load()
            except ExchangeError as error:
                log.warning("Binance order filters not refreshed: %s", error.message)
