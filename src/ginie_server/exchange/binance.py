"""Binance USD-M futures behind the `Exchange` interface, through python-binance.

`BinanceExchange` is the facade the engine drives. The work is done by parts with one job each,
thin async shells around the pure mapping in `binance_mapping`:

- `binance_rest`: REST through `binance.AsyncClient` on `futures_url`, every response's latency
  and rate-limit headers read, no request sent during a 429/418 back-off, Binance errors as
  `ExchangeError` naming the failed request, conditional orders read back until the algo
  service knows them.
- `binance_streams`: the streams on `stream_url`, each under its own supervisor that opens a
  fresh one (with a fresh listenKey) after any end, with a backoff.
- `binance_user_stream`: the user data stream (listenKey, kept alive by the library every
  `keepalive_interval_s`), its messages into the account cache.
- `binance_reconcile`: after every (re)connect of the user stream, a REST reconcile beside it
  (open orders, conditional orders, the fills since the last one seen, position risk,
  balances), and the position refreshes the stream asks for, retried with backoff while live
  events flow; the health is `degraded`, naming the failing call, until one succeeds.
- `binance_market`: two combined market streams (mark price and 1m klines; partial depth).
- `binance_orders`: orders placed and cancelled (conditional ones through the algo service),
  leverage set.
- `binance_filters`: the order filters, read at start and every `filters_refresh_s`.
- `binance_account`: the account as last reported, each change told to the listener once.
- `binance_health`: the link's health, reported at every change.

A malformed payload is logged with the reason, counted in `malformed_payloads`, reported as the
health's `last_error`, and skipped; the stream goes on. All the parts log as
`ginie_server.exchange.binance`.

Liquidation and auto-deleveraging fills are reported as trades, their orders with the reason
`liquidation` or `auto-deleveraging` (see `binance_mapping.special_reason`).

Limits: one-way position mode only (hedge legs are netted); at most 1000 fills per symbol are
recovered per reconcile; the order counts Binance reports are kept (`rate_limits`) but not
shown in `ApiHealth`, which has no field for them; the API key and secret live only inside the
python-binance client and are never logged, printed or returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from ginie_protocol.events import Balance, Kline, MarkPrice, Order, OrderBook, Position
from ginie_server.clock import Clock
from ginie_server.domain.lifecycle import parse_client_id
from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import (
    Exchange,
    ExchangeError,
    ExchangeListener,
    OrderRequest,
    SymbolFilters,
)
from ginie_server.exchange.binance_account import AccountCache
from ginie_server.exchange.binance_filters import FilterBook
from ginie_server.exchange.binance_health import LinkHealth
from ginie_server.exchange.binance_limits import RateLimits
from ginie_server.exchange.binance_market import MarketFeed
from ginie_server.exchange.binance_orders import OrderDesk
from ginie_server.exchange.binance_reconcile import POSITIONS, Reconciler
from ginie_server.exchange.binance_rest import BinanceRest
from ginie_server.exchange.binance_streams import StreamSockets
from ginie_server.exchange.binance_user_stream import UserStream

log = logging.getLogger(__name__)

DEFAULT_FUTURES_URL = "https://fapi.binance.com/fapi"
DEFAULT_STREAM_URL = "wss://fstream.binance.com/"
TESTNET_FUTURES_URL = "https://testnet.binancefuture.com/fapi"
TESTNET_STREAM_URL = "wss://fstream.binancefuture.com/"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")


def ginie_chain_of(client_order_id: str) -> str | None:
    """The chain a Ginie client order id (`g-<chain>-<role>`) belongs to; None for others."""
    parsed = parse_client_id(client_order_id)
    return parsed[0] if parsed is not None else None


class BinanceExchange(Exchange):
    """One Binance USD-M account, served to its owner; see the module docstring."""

    name = "binance"

    def __init__(
        self,
        owner: str,
        symbols: tuple[str, ...] | list[str],
        api_key: str,
        api_secret: str,
        futures_url: str,
        stream_url: str,
        testnet: bool,
        clock: Clock,
        *,
        chain_of: mapping.ChainOf = ginie_chain_of,
        keepalive_interval_s: float = 30 * 60,
        reconnect_delay_s: tuple[float, float] = (0.5, 30.0),
        rest_retry_s: tuple[float, float] = (1.0, 60.0),
        algo_visibility_s: float = 5.0,
        filters_refresh_s: float = 3600.0,
        start_timeout_s: float = 15.0,
        kline_history: int = 120,
        depth_levels: int = 10,
    ) -> None:
        self.owner = owner
        self.symbols = tuple(symbols)
        self.testnet = testnet
        self.futures_url = futures_url.rstrip("/")
        self.stream_url = stream_url if stream_url.endswith("/") else stream_url + "/"
        self._start_timeout_s = start_timeout_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        rate_limits = RateLimits()
        self._health = LinkHealth(self.name, rate_limits, clock, self._stopping)
        self._rest = BinanceRest(
            self.futures_url,
            api_key,
            api_secret,
            rate_limits,
            self._health,
            algo_visibility_s=algo_visibility_s,
        )
        self._sockets = StreamSockets(
            self._rest,
            self.stream_url,
            keepalive_interval_s=keepalive_interval_s,
            reconnect_delay_s=reconnect_delay_s,
            stopping=self._stopping,
        )
        self._account = AccountCache(owner)
        self._filters = FilterBook(self._rest, refresh_s=filters_refresh_s, stopping=self._stopping)
        self._market = MarketFeed(
            self.symbols,
            self._rest,
            self._sockets,
            self._health,
            kline_history=kline_history,
            depth_levels=depth_levels,
            stopping=self._stopping,
        )
        self._reconciler = Reconciler(
            self._rest,
            self._account,
            self._health,
            self.symbols,
            clock,
            chain_of=chain_of,
            retry_s=rest_retry_s,
        )
        self._user = UserStream(
            self._sockets,
            self._account,
            self._reconciler,
            self._health,
            chain_of=chain_of,
            mark_prices=self._market.mark_prices,
            stopping=self._stopping,
        )
        self._orders = OrderDesk(
            self._rest,
            self._account,
            self._filters,
            clock,
            chain_of=chain_of,
            mark_prices=self._market.mark_prices,
            refresh_positions=partial(self._reconciler.want, POSITIONS),
        )

    def __repr__(self) -> str:
        return (
            f"BinanceExchange(owner={self.owner!r}, symbols={self.symbols!r}, "
            f"futures_url={self.futures_url!r}, stream_url={self.stream_url!r}, "
            f"testnet={self.testnet!r})"
        )

    # ------------------------------------------------------------------ Exchange: lifecycle

    def set_listener(self, listener: ExchangeListener) -> None:
        self._health.listener = listener
        self._account.listener = listener
        self._market.listener = listener

    async def start(self) -> None:
        """Connect REST and streams; return after the first reconcile attempt, whether it
        succeeded or not (or after `start_timeout_s`).

        Raises ExchangeError when Binance cannot be reached at all.
        """
        self._stopping.clear()
        client = self._rest.open()
        try:
            server = await self._rest.call(client.futures_time)
            await self._filters.load()
            self._rest.align_clock(int(server["serverTime"]))
            await self._market.load_history()
        except (ExchangeError, mapping.BinancePayloadError):
            await self._rest.close()
            raise
        sessions = {"user data": self._user.session, **self._market.sessions()}
        self._tasks = [
            *(asyncio.create_task(self._sockets.supervise(*item)) for item in sessions.items()),
            asyncio.create_task(self._filters.refresh()),
        ]
        try:
            await asyncio.wait_for(self._reconciler.synced.wait(), self._start_timeout_s)
        except TimeoutError:
            log.warning(
                "Binance user data stream not synced within %.0f s; still trying",
                self._start_timeout_s,
            )

    async def stop(self) -> None:
        self._stopping.set()
        self._health.cancel_scheduled()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._rest.close()

    @property
    def user_stream_connected(self) -> bool:
        """Whether the user data stream is connected right now."""
        return self._health.user_stream_up

    @property
    def reconciled(self) -> bool:
        """Whether a reconcile succeeded since the user data stream last connected."""
        return self._reconciler.reconciled

    @property
    def user_stream_connects(self) -> int:
        """How many times the user data stream connected (the first time included)."""
        return self._user.connects

    @property
    def reconciles(self) -> int:
        """How many REST reconciles completed."""
        return self._reconciler.reconciles

    @property
    def malformed_payloads(self) -> int:
        """Payloads skipped because they did not match Binance's documented shape."""
        return self._health.malformed_payloads

    @property
    def rate_limits(self) -> RateLimits:
        """Request weight, order counts and any 429/418 back-off, as Binance last reported."""
        return self._rest.rate_limits

    def serves(self, user: str) -> bool:
        return user == self.owner

    # ------------------------------------------------------------------ Exchange: trading

    async def place_order(self, user: str, request: OrderRequest) -> Order:
        self._check_user(user)
        return await self._orders.place(request)

    async def cancel_order(
        self,
        user: str,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        self._check_user(user)
        return await self._orders.cancel(symbol, order_id=order_id, client_order_id=client_order_id)

    async def set_leverage(self, user: str, symbol: str, leverage: int) -> None:
        self._check_user(user)
        await self._orders.set_leverage(symbol, leverage)

    def _check_user(self, user: str) -> None:
        if not self.serves(user):
            raise ExchangeError("not_served", f"user {user!r} has no account on this exchange")

    # ------------------------------------------------------------------ Exchange: state

    def positions(self, user: str) -> list[Position]:
        return self._account.open_positions() if self.serves(user) else []

    def open_orders(self, user: str) -> list[Order]:
        return self._account.open_orders() if self.serves(user) else []

    def balances(self, user: str) -> list[Balance]:
        return list(self._account.balances.values()) if self.serves(user) else []

    def mark_price(self, symbol: str) -> MarkPrice | None:
        return self._market.mark_price(symbol)

    def klines(self, symbol: str) -> list[Kline]:
        return self._market.klines(symbol)

    def order_book(self, symbol: str) -> OrderBook | None:
        return self._market.order_book(symbol)

    def filters(self, symbol: str) -> SymbolFilters | None:
        return self._filters.get(symbol)


def binance_exchange_from_env(
    owner: str,
    testnet: bool,
    clock: Clock,
    *,
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> BinanceExchange:
    """Build the exchange from the environment (SPEC section 1).

    Keys come only from GINIE_BINANCE_API_KEY / GINIE_BINANCE_API_SECRET; endpoints from
    GINIE_BINANCE_FUTURES_URL / GINIE_BINANCE_STREAM_URL, defaulting to mainnet, or to the
    testnet with `testnet`. Raises ExchangeError (code `missing_api_key`) when a key is unset.
    """
    env = os.environ if environ is None else environ
    api_key = env.get("GINIE_BINANCE_API_KEY", "")
    api_secret = env.get("GINIE_BINANCE_API_SECRET", "")
    if not api_key or not api_secret:
        raise ExchangeError(
            "missing_api_key",
            "set GINIE_BINANCE_API_KEY and GINIE_BINANCE_API_SECRET to trade on Binance",
        )
    futures_url = env.get("GINIE_BINANCE_FUTURES_URL") or (
        TESTNET_FUTURES_URL if testnet else DEFAULT_FUTURES_URL
    )
    stream_url = env.get("GINIE_BINANCE_STREAM_URL") or (
        TESTNET_STREAM_URL if testnet else DEFAULT_STREAM_URL
    )
    return BinanceExchange(
        owner,
        symbols,
        api_key,
        api_secret,
        futures_url,
        stream_url,
        testnet,
        clock,
        **options,
    )
