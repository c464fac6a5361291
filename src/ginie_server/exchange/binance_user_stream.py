"""Binance's user data stream: one life of its listenKey session, and its messages into the
account cache.

The REST jobs run beside the stream for as long as it is connected, starting with a reconcile.
The stream also asks for REST: a position that opened or changed size, a leverage or
margin-mode change refreshes the positions, a liquidation fill without a trade id reconciles.
A malformed message is counted and skipped; the stream goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.binance_account import AccountCache
from ginie_server.exchange.binance_health import LinkHealth
from ginie_server.exchange.binance_reconcile import POSITIONS, RECONCILE, Reconciler
from ginie_server.exchange.binance_streams import StreamSockets

log = logging.getLogger("ginie_server.exchange.binance")


class UserStream:
    """The private stream of one account; `session` is supervised by `StreamSockets`."""

    def __init__(
        self,
        sockets: StreamSockets,
        account: AccountCache,
        reconciler: Reconciler,
        health: LinkHealth,
        *,
        chain_of: mapping.ChainOf,
        mark_prices: Callable[[], dict[str, float]],
        stopping: asyncio.Event,
    ) -> None:
        self._sockets = sockets
        self._account = account
        self._reconciler = reconciler
        self._health = health
        self._chain_of = chain_of
        self._mark_prices = mark_prices
        self._stopping = stopping
        self.connects = 0
        """How many times the user data stream connected (the first time included)."""

    async def session(self) -> None:
        """One life of the user data stream: connect, then read it until it ends, while the
        REST jobs run beside it."""
        socket = await self._sockets.user()
        worker: asyncio.Task[None] | None = None
        try:
            await socket.__aenter__()
            self.connects += 1
            self._health.user_stream_up = True
            log.info("Binance user data stream connected")
            self._reconciler.want(RECONCILE)
            worker = asyncio.create_task(self._reconciler.run())
            self._health.report()
            while not self._stopping.is_set():
                message = await socket.recv()
                kind = message.get("e") if isinstance(message, Mapping) else None
                if kind == "error":
                    log.warning("Binance user data stream dropped: %s", message.get("m"))
                    return
                if kind == "listenKeyExpired":
                    log.info("Binance listenKey expired; opening a new user data stream")
                    return
                self._on_message(message)
        finally:
            self._health.user_stream_up = False
            self._reconciler.reconciled = False
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await self._sockets.close(socket)
            self._health.report()

    def _on_message(self, message: Any) -> None:
        kind = message.get("e") if isinstance(message, Mapping) else None
        self._account.count_stream_message()
        try:
            if kind == "ORDER_TRADE_UPDATE":
                self._on_order_trade_update(message)
            elif kind == "ACCOUNT_UPDATE":
                self._on_account_update(message)
            elif kind == "ACCOUNT_CONFIG_UPDATE":
                self._on_account_config_update(message)
            elif kind == "ALGO_UPDATE":
                algo_id = message.get("o", {}).get("aid")
                previous = self._account.orders.get(f"{mapping.ALGO_ORDER_PREFIX}{algo_id}")
                self._account.apply_order(
                    mapping.algo_update(message, chain_of=self._chain_of, previous=previous)
                )
            else:
                log.debug("ignored Binance user event %r", kind)
        except (mapping.BinancePayloadError, AttributeError) as error:
            if isinstance(error, AttributeError):
                error = mapping.BinancePayloadError(str(kind), "a field is not an object")
            self._health.count_malformed(error)

    def _on_order_trade_update(self, message: Mapping[str, Any]) -> None:
        order_id = str(message.get("o", {}).get("i"))
        update = mapping.order_trade_update(
            message, chain_of=self._chain_of, previous=self._account.orders.get(order_id)
        )
        self._account.apply_order(update.order)
        if update.trade is not None:
            self._account.apply_trade(update.trade)
        elif update.unnumbered_fill:
            log.info("Binance %s fill without a trade id; reconciling", update.order.reason)
            self._reconciler.want(RECONCILE)

    def _on_account_update(self, message: Mapping[str, Any]) -> None:
        update = mapping.account_update(
            message,
            positions=self._account.positions,
            balances=self._account.balances,
            mark_prices=self._mark_prices(),
            leverage=self._account.leverage,
        )
        for balance in update.balances:
            self._account.set_by_stream(f"balance:{balance.asset}")
            self._account.apply_balance(balance)
        resized = False
        for position in update.positions:
            cached = self._account.positions.get(position.symbol)
            resized |= position.size != 0 and (cached is None or cached.size != position.size)
            self._account.set_by_stream(f"position:{position.symbol}")
            self._account.apply_position(position)
        # ACCOUNT_UPDATE has no liquidation price (and no leverage): a position that opened or
        # changed size, or changed margin mode, learns them from Binance's position risk.
        if resized or update.reason == "MARGIN_TYPE_CHANGE":
            self._reconciler.want(POSITIONS)

    def _on_account_config_update(self, message: Mapping[str, Any]) -> None:
        """Leverage changed (here or elsewhere): the position shows it and the margin it
        implies at once, and Binance's own figures (liquidation price) after a refresh."""
        update = mapping.account_config_update(
            message, positions=self._account.positions, mark_prices=self._mark_prices()
        )
        if update.multi_assets is not None:
            log.info("Binance Multi-Assets mode is now %s", "on" if update.multi_assets else "off")
        if update.symbol is not None and update.leverage is not None:
            self._account.set_by_stream(f"position:{update.symbol}")
            if self._account.leverage_changed(update.symbol, update.leverage, update.position):
                self._reconciler.want(POSITIONS)
