"""Binance USD-M futures behind the `Exchange` interface, through python-binance.

A thin async shell around the pure mapping in `binance_mapping`:

- REST through `binance.AsyncClient`, its base URL taken from `futures_url`. An aiohttp trace
  hook reads every response (so concurrent requests cannot mix them up): its latency, and its
  rate-limit headers into `binance_limits.RateLimits`. After a 429 or a 418 no request is sent
  until its `Retry-After` has passed; a call made meanwhile fails at once. Binance errors become
  `ExchangeError`, naming the request that failed.
- Streams through `binance.BinanceSocketManager` on `stream_url`: the user data stream
  (listenKey, kept alive by the library every `keepalive_interval_s`) and two combined market
  streams (mark price and 1m klines; partial depth). Each stream runs under its own supervisor:
  the library's own reconnects are turned off, and any end of a stream (a drop, the 24-hour
  disconnect, `listenKeyExpired`, a rotated key) makes the supervisor open a fresh one with a
  fresh listenKey, after a backoff.
- After every (re)connect of the user stream a REST reconcile (open orders, conditional orders,
  the fills made since the last one seen, position risk, balances) reports to the listener
  whatever changed while the stream was down. It runs beside the stream, which is read from the
  moment it connects: a reconcile that fails (an endpoint answering 5xx, a rate limit) is retried
  with backoff while live events flow, and the health is `degraded`, naming the failing call,
  until one succeeds. The stream also asks for REST: a leverage or margin-mode change refreshes
  the positions, a liquidation fill without a trade id a reconcile.
- Binance's algo service may not know a conditional order for a few seconds after accepting it:
  reading it back or cancelling it meanwhile (-2013, -2011) is retried for `algo_visibility_s`.
- The order filters (tick, step, minimum quantity and notional, max leverage) are read from
  exchangeInfo and the leverage brackets at start and every `filters_refresh_s`.

State reported to the listener is deduplicated: an order is reported when it differs from the
cached one and is not older news (`is_stale`), a fill once per trade id, a position or balance
when it changed; a position or balance the stream updated while a REST read was under way keeps
the stream's value. A malformed payload is logged with the reason, counted in
`malformed_payloads`, reported as the health's `last_error`, and skipped; the stream goes on.

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
import math
import os
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import Any, ParamSpec, TypeVar

import aiohttp
from binance.exceptions import BinanceAPIException, BinanceRequestException

from binance import AsyncClient, BinanceSocketManager
from ginie_protocol.events import (
    ApiHealth,
    Balance,
    Health,
    Kline,
    MarkPrice,
    Order,
    OrderBook,
    Position,
    Trade,
)
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
from ginie_server.exchange.binance_limits import BANNED, RATE_LIMITED, RateLimits

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_P = ParamSpec("_P")

DEFAULT_FUTURES_URL = "https://fapi.binance.com/fapi"
DEFAULT_STREAM_URL = "wss://fstream.binance.com/"
TESTNET_FUTURES_URL = "https://testnet.binancefuture.com/fapi"
TESTNET_STREAM_URL = "wss://fstream.binancefuture.com/"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")

_ERROR_CODES: dict[int, str] = {
    -1003: "rate_limited",
    -1021: "clock_skew",
    -1022: "bad_signature",
    -1102: "bad_request",
    -1111: "bad_precision",
    -1116: "bad_order_type",
    -1121: "invalid_symbol",
    -1125: "listen_key_expired",
    -2011: "unknown_order",
    -2013: "order_not_found",
    -2014: "bad_api_key",
    -2015: "bad_api_key",
    -2019: "insufficient_margin",
    -2022: "reduce_only_rejected",
    -4003: "bad_quantity",
    -4028: "bad_leverage",
    -4116: "duplicate_client_order_id",
    -4164: "notional_too_small",
}

_STATUS_CODES: dict[int, str] = {BANNED: "ip_banned", RATE_LIMITED: "rate_limited"}
_UNKNOWN_ORDER_CODES = frozenset({"unknown_order", "order_not_found"})
_RECONCILE = "reconcile"
_POSITIONS = "position refresh"

_CONDITIONAL_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
_RECENT_TRADES = 2000
_KEPT_TERMINAL_ORDERS = 1000


def ginie_chain_of(client_order_id: str) -> str | None:
    """The chain a Ginie client order id (`g-<chain>-<role>`) belongs to; None for others."""
    parsed = parse_client_id(client_order_id)
    return parsed[0] if parsed is not None else None


def exchange_error(error: BinanceAPIException) -> ExchangeError:
    """A Binance API error as a short stable code, a readable message and the failed request.

    An answer without Binance's JSON error body (a proxy's 503, say) is named by its HTTP status.
    """
    status = int(error.status_code or 0)
    response = error.response
    method, url = getattr(response, "method", None), getattr(response, "url", None)
    call = f"{method} {url.path}" if method and url is not None else None
    if error.code:
        code = _STATUS_CODES.get(status) or _ERROR_CODES.get(int(error.code), "binance_error")
        return ExchangeError(code, f"{error.message} (Binance {error.code})", call=call)
    if status in _STATUS_CODES:
        code = _STATUS_CODES[status]
    else:
        code = "exchange_unavailable" if status >= 500 else "binance_error"
    reason = getattr(response, "reason", None) or ""
    return ExchangeError(code, f"HTTP {status} {reason}".rstrip(), call=call)


def _backoff(attempt: int, bounds: tuple[float, float]) -> float:
    """A jittered exponential delay: between `low` and `low * 2**attempt`, at most `high`."""
    low, high = bounds
    return random.uniform(low, min(high, low * 2**attempt))


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
        self._credentials = (api_key, api_secret)
        self._clock = clock
        self._chain_of = chain_of
        self._keepalive_interval_s = keepalive_interval_s
        self._reconnect_delay_s = reconnect_delay_s
        self._rest_retry_s = rest_retry_s
        self._algo_visibility_s = algo_visibility_s
        self._filters_refresh_s = filters_refresh_s
        self._start_timeout_s = start_timeout_s
        self._kline_history = kline_history
        self._depth_levels = depth_levels
        self._listener: ExchangeListener | None = None
        self._client: AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._stopping = False

        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._positions: dict[str, Position] = {}
        self._balances: dict[str, Balance] = {}
        self._leverage: dict[str, int] = {}
        self._filters: dict[str, SymbolFilters] = {}
        self._marks: dict[str, MarkPrice] = {}
        self._klines: dict[str, deque[Kline]] = {s: deque(maxlen=500) for s in self.symbols}
        self._books: dict[str, OrderBook] = {}
        self._last_trade_id: dict[str, int] = {}
        self._recent_trades: OrderedDict[tuple[str, int], None] = OrderedDict()

        self.malformed_payloads = 0
        """Payloads skipped because they did not match Binance's documented shape."""
        self.user_stream_connects = 0
        """How many times the user data stream connected (the first time included)."""
        self.reconciles = 0
        """How many REST reconciles completed."""
        self.rate_limits = RateLimits()
        """Request weight, order counts and any 429/418 back-off, as Binance last reported."""
        self._user_stream_up = False
        self._reconciled = False
        self._latency_ms: float | None = None
        self._last_error: str | None = None
        self._rest_error: str | None = None
        """A REST job the stream depends on (reconcile, position refresh) that is failing."""
        self._wanted: set[str] = set()
        self._wake = asyncio.Event()
        self._stream_seq = 0
        self._touched: dict[str, int] = {}
        """The stream message that last set each position / balance (`position:SYM`, ...)."""
        self._algo_placed: dict[str, float] = {}
        self._unblock_report: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"BinanceExchange(owner={self.owner!r}, symbols={self.symbols!r}, "
            f"futures_url={self.futures_url!r}, stream_url={self.stream_url!r}, "
            f"testnet={self.testnet!r})"
        )

    # ------------------------------------------------------------------ Exchange: lifecycle

    def set_listener(self, listener: ExchangeListener) -> None:
        self._listener = listener

    async def start(self) -> None:
        """Connect REST and streams; return after the first reconcile attempt, whether it
        succeeded or not (or after `start_timeout_s`).

        Raises ExchangeError when Binance cannot be reached at all.
        """
        self._stopping = False
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_end.append(self._on_request_end)
        api_key, api_secret = self._credentials
        client = AsyncClient(api_key, api_secret, session_params={"trace_configs": [trace]})
        client.FUTURES_URL = self.futures_url
        self._client = client
        try:
            server = await self._call(client.futures_time)
            await self._load_filters()
            # python-binance signs with time.time() plus this offset, so it is measured
            # against the same wall clock rather than the injectable one.
            client.timestamp_offset = int(server["serverTime"]) - int(time.time() * 1000)
            for symbol in self.symbols:
                rows = await self._call(
                    client.futures_klines, symbol=symbol, interval="1m", limit=self._kline_history
                )
                self._klines[symbol].extend(mapping.rest_klines(symbol, rows))
        except (ExchangeError, mapping.BinancePayloadError):
            await client.close_connection()
            self._client = None
            raise
        self._tasks = [
            asyncio.create_task(self._supervise("user data", self._user_session)),
            asyncio.create_task(
                self._supervise(
                    "mark price and klines",
                    lambda: self._market_session("market", self._market_streams()),
                )
            ),
            asyncio.create_task(
                self._supervise(
                    "depth", lambda: self._market_session("public", self._depth_streams())
                )
            ),
            asyncio.create_task(self._refresh_filters()),
        ]
        try:
            await asyncio.wait_for(self._synced.wait(), self._start_timeout_s)
        except TimeoutError:
            log.warning(
                "Binance user data stream not synced within %.0f s; still trying",
                self._start_timeout_s,
            )

    async def stop(self) -> None:
        self._stopping = True
        if self._unblock_report is not None:
            self._unblock_report.cancel()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.close_connection()

    @property
    def user_stream_connected(self) -> bool:
        """Whether the user data stream is connected right now."""
        return self._user_stream_up

    @property
    def reconciled(self) -> bool:
        """Whether a reconcile succeeded since the user data stream last connected."""
        return self._reconciled

    def serves(self, user: str) -> bool:
        return user == self.owner

    # ------------------------------------------------------------------ Exchange: trading

    async def place_order(self, user: str, request: OrderRequest) -> Order:
        self._check_user(user)
        # A symbol without known filters goes to Binance as asked, for Binance to judge.
        known = self._filters.get(request.symbol)
        step, tick = (known.step_size, known.tick_size) if known is not None else (0.0, 0.0)
        quantity = mapping.to_step(request.quantity, step)
        if float(quantity) <= 0:
            raise ExchangeError("bad_quantity", f"quantity below the step {step:g}")
        params: dict[str, Any] = {
            "symbol": request.symbol,
            "side": request.side,
            "type": request.type,
            "quantity": quantity,
        }
        if request.reduce_only:
            params["reduceOnly"] = "true"
        conditional = request.type in _CONDITIONAL_TYPES
        if conditional:
            if request.stop_price is None:
                raise ExchangeError("bad_request", f"{request.type} needs a stop price")
            params["clientAlgoId"] = request.client_order_id
            params["triggerPrice"] = mapping.to_step(request.stop_price, tick)
            params["workingType"] = "MARK_PRICE"
        else:
            params["newClientOrderId"] = request.client_order_id
            params["newOrderRespType"] = "RESULT"
        if request.type == "LIMIT":
            if request.price is None:
                raise ExchangeError("bad_request", "LIMIT needs a price")
            params["price"] = mapping.to_step(request.price, tick)
            params["timeInForce"] = "GTC"
        item = await self._call(self._require_client().futures_create_order, **params)
        order = self._map(
            "order response",
            mapping.rest_algo_order if conditional else mapping.rest_order,
            item,
            chain_of=self._chain_of,
        )
        if conditional:
            self._note_algo_placed(order.order_id)
        self._apply_order(order)
        return self._orders.get(order.order_id, order)

    async def cancel_order(
        self,
        user: str,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        self._check_user(user)
        client = self._require_client()
        if order_id is None and client_order_id is not None:
            known = next(
                (o for o in self._orders.values() if o.client_order_id == client_order_id), None
            )
            order_id = known.order_id if known is not None else None
        if order_id is not None and order_id.startswith(mapping.ALGO_ORDER_PREFIX):
            algo_id = self._parse_id(order_id[len(mapping.ALGO_ORDER_PREFIX) :])
            await self._read_back(order_id, client.futures_cancel_order, algoId=algo_id)
            item = await self._read_back(order_id, client.futures_get_order, algoId=algo_id)
            order = self._map(
                "algo order",
                mapping.rest_algo_order,
                item,
                chain_of=self._chain_of,
                previous=self._orders.get(order_id),
            )
        else:
            if order_id is not None:
                params: dict[str, Any] = {"orderId": self._parse_id(order_id)}
            elif client_order_id is not None:
                params = {"origClientOrderId": client_order_id}
            else:
                raise ExchangeError("bad_request", "give an order_id or a client_order_id")
            item = await self._call(client.futures_cancel_order, symbol=symbol, **params)
            order = self._map(
                "order response",
                mapping.rest_order,
                item,
                chain_of=self._chain_of,
                previous=self._orders.get(str(item.get("orderId"))),
            )
        self._apply_order(order)
        return self._orders.get(order.order_id, order)

    async def set_leverage(self, user: str, symbol: str, leverage: int) -> None:
        self._check_user(user)
        await self._call(
            self._require_client().futures_change_leverage, symbol=symbol, leverage=leverage
        )
        cached = self._positions.get(symbol)
        self._leverage_changed(
            symbol,
            leverage,
            None
            if cached is None
            else mapping.with_leverage(
                cached, leverage, self._mark_prices().get(symbol), self._clock.now_ms()
            ),
        )

    # ------------------------------------------------------------------ Exchange: state

    def positions(self, user: str) -> list[Position]:
        return [p for p in self._positions.values() if p.size != 0] if self.serves(user) else []

    def open_orders(self, user: str) -> list[Order]:
        if not self.serves(user):
            return []
        return [o for o in self._orders.values() if o.status not in mapping.TERMINAL_STATUSES]

    def balances(self, user: str) -> list[Balance]:
        return list(self._balances.values()) if self.serves(user) else []

    def mark_price(self, symbol: str) -> MarkPrice | None:
        return self._marks.get(symbol)

    def klines(self, symbol: str) -> list[Kline]:
        return list(self._klines.get(symbol, ()))

    def order_book(self, symbol: str) -> OrderBook | None:
        return self._books.get(symbol)

    def filters(self, symbol: str) -> SymbolFilters | None:
        return self._filters.get(symbol)

    # ------------------------------------------------------------------ REST plumbing

    def _require_client(self) -> AsyncClient:
        if self._client is None:
            raise ExchangeError("exchange_unavailable", "the Binance exchange is not started")
        return self._client

    def _check_user(self, user: str) -> None:
        if not self.serves(user):
            raise ExchangeError("not_served", f"user {user!r} has no account on this exchange")

    @staticmethod
    def _parse_id(text: str) -> int:
        if not text.isdigit():
            raise ExchangeError("bad_request", f"not a Binance order id: {text!r}")
        return int(text)

    async def _call(self, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        """One REST call; Binance and transport errors become ExchangeError, shown in health."""
        try:
            return await self._send(method, **params)
        except ExchangeError as failure:
            self._last_error = failure.message
            self._report_health()
            raise

    async def _send(self, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        """One REST call, refused without sending while a 429/418 back-off is in force."""
        blocked = self.rate_limits.describe(time.monotonic())
        if blocked is not None:
            code = "ip_banned" if self.rate_limits.banned(time.monotonic()) else "rate_limited"
            raise ExchangeError(code, f"Binance {blocked}", call=method.__name__)
        try:
            return await method(**params)
        except BinanceAPIException as error:
            raise exchange_error(error) from None
        except (BinanceRequestException, aiohttp.ClientError, TimeoutError) as error:
            raise ExchangeError(
                "exchange_unavailable", f"Binance unreachable: {error}", call=method.__name__
            ) from None

    async def _read_back(
        self, order_id: str, method: Callable[..., Awaitable[Any]], **params: Any
    ) -> Any:
        """`_call` about one order. Binance's algo service may not know a conditional order for
        a few seconds after accepting it, so while that order is younger than
        `algo_visibility_s` an unknown-order answer (-2013, -2011) is asked again, with backoff."""
        attempt = 0
        while True:
            try:
                return await self._send(method, **params)
            except ExchangeError as failure:
                placed = self._algo_placed.get(order_id, -math.inf)
                left = placed + self._algo_visibility_s - time.monotonic()
                if failure.code not in _UNKNOWN_ORDER_CODES or left <= 0:
                    self._last_error = failure.message
                    self._report_health()
                    raise
                log.info("Binance does not know algo order %s yet; asking again", order_id)
            await asyncio.sleep(min(left, _backoff(attempt, (0.1, 1.0))))
            attempt += 1

    def _note_algo_placed(self, order_id: str) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._algo_placed.items() if now - t > self._algo_visibility_s]:
            del self._algo_placed[key]
        self._algo_placed[order_id] = now

    async def _rest_allowed(self) -> None:
        """Wait out the 429/418 back-off in force, if any."""
        wait = self.rate_limits.wait_s(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)

    async def _on_request_start(
        self, _session: aiohttp.ClientSession, context: SimpleNamespace, _params: Any
    ) -> None:
        context.started = asyncio.get_running_loop().time()

    async def _on_request_end(
        self,
        _session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._latency_ms = (loop.time() - context.started) * 1000
        status = params.response.status
        now = time.monotonic()
        self.rate_limits.on_response(status, params.response.headers, now)
        wait = self.rate_limits.wait_s(now)
        if wait > 0:
            log.warning("Binance: %s", self.rate_limits.describe(now))
            # Say `ok` again when the back-off ends, even if nothing is sent then.
            if self._unblock_report is not None:
                self._unblock_report.cancel()
            self._unblock_report = loop.call_later(wait, self._report_health)
        if status < 400:
            self._last_error = None
        self._report_health()

    def _report_health(self) -> None:
        """Report the link's health: `down` during an IP ban; `degraded` during a 429 back-off,
        while a REST job the stream depends on fails, while the user stream is down, or after
        a failed call until the next success; else `ok`. `last_error` names the first cause."""
        if self._listener is None or self._stopping:
            return
        now = time.monotonic()
        problem = (
            self.rate_limits.describe(now)
            or self._rest_error
            or (None if self._user_stream_up else "user data stream not connected")
            or self._last_error
        )
        status: Health = "ok"
        if self.rate_limits.banned(now):
            status = "down"
        elif problem is not None:
            status = "degraded"
        self._listener.on_health(
            ApiHealth(
                exchange=self.name,
                status=status,
                latency_ms=self._latency_ms,
                weight_used=self.rate_limits.weight_used,
                weight_limit=self.rate_limits.weight_limit,
                last_error=problem,
                updated_at=self._clock.now_ms(),
            )
        )

    def _map(self, what: str, build: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Map a REST response with `build(*args, **kwargs)`; a malformed one is ExchangeError."""
        try:
            return build(*args, **kwargs)
        except mapping.BinancePayloadError as error:
            self._count_malformed(error)
            raise ExchangeError("bad_response", f"Binance sent a malformed {what}") from error

    def _count_malformed(self, error: mapping.BinancePayloadError) -> None:
        self.malformed_payloads += 1
        self._last_error = str(error)
        log.warning("skipped a Binance payload: %s", error)
        self._report_health()

    # ------------------------------------------------------------------ stream supervision

    async def _supervise(self, name: str, session: Callable[[], Awaitable[None]]) -> None:
        """Run a stream session again and again, with jittered exponential backoff."""
        attempt = 0
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            try:
                await session()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("Binance %s stream failed: %s", name, error)
            if self._stopping:
                return
            if asyncio.get_running_loop().time() - started > 60:
                attempt = 0
            delay = _backoff(attempt, self._reconnect_delay_s)
            attempt += 1
            log.info("Binance %s stream ended; reconnecting in %.1f s", name, delay)
            await asyncio.sleep(delay)

    def _socket_manager(self) -> BinanceSocketManager:
        manager = BinanceSocketManager(
            self._require_client(),
            user_timeout=self._keepalive_interval_s,
            max_queue_size=10_000,
        )
        manager.FSTREAM_URL = self.stream_url
        return manager

    @staticmethod
    async def _close_socket(socket: Any) -> None:
        """Close a python-binance socket promptly (closing the connection first lets its read
        loop end at once instead of waiting out its receive timeout)."""
        if socket.ws is not None:
            with contextlib.suppress(Exception):
                await socket.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.__aexit__(None, None, None), timeout=5)

    async def _user_session(self) -> None:
        """One life of the user data stream: connect, then read it until it ends, while the
        REST worker reconciles beside it."""
        await self._rest_allowed()  # a listenKey is asked for by REST
        socket = self._socket_manager().futures_user_socket()
        socket.MAX_RECONNECTS = 0
        worker: asyncio.Task[None] | None = None
        try:
            await socket.__aenter__()
            self.user_stream_connects += 1
            self._user_stream_up = True
            log.info("Binance user data stream connected")
            self._want(_RECONCILE)
            worker = asyncio.create_task(self._rest_worker())
            self._report_health()
            while not self._stopping:
                message = await socket.recv()
                kind = message.get("e") if isinstance(message, Mapping) else None
                if kind == "error":
                    log.warning("Binance user data stream dropped: %s", message.get("m"))
                    return
                if kind == "listenKeyExpired":
                    log.info("Binance listenKey expired; opening a new user data stream")
                    return
                self._on_user_message(message)
        finally:
            self._user_stream_up = False
            self._reconciled = False
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await self._close_socket(socket)
            self._report_health()

    def _want(self, job: str) -> None:
        """Ask the REST worker of the user stream for a job (`_RECONCILE` or `_POSITIONS`)."""
        self._wanted.add(job)
        self._wake.set()

    async def _rest_worker(self) -> None:
        """Run the REST jobs the user stream asks for, one at a time, each until it succeeds.

        A reconcile covers a position refresh, so one wanted together with it is dropped.
        """
        jobs = {_RECONCILE: self._reconcile, _POSITIONS: self._refresh_positions}
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, set()
            for name in [_RECONCILE] if _RECONCILE in wanted else sorted(wanted):
                await self._until_done(name, jobs[name])

    async def _until_done(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` until it succeeds; while it fails the health is `degraded` and names the
        failing call, and it is tried again after a jittered backoff (`rest_retry_s`)."""
        attempt = 0
        while True:
            await self._rest_allowed()
            try:
                await job()
            except ExchangeError as error:
                failure = f"{error.call or name}: {error.message}"
                # Said once per kind of failure; the retries that fail alike only at debug level.
                level = logging.DEBUG if failure == self._rest_error else logging.WARNING
                log.log(level, "Binance %s failed, the stream goes on: %s", name, failure)
                self._rest_error = failure
            else:
                if self._rest_error is not None:
                    log.info("Binance %s succeeded again", name)
                self._rest_error = None
                self._synced.set()
                self._report_health()
                return
            self._synced.set()  # start() waits for the first attempt, not for a success
            self._report_health()
            await asyncio.sleep(_backoff(attempt, self._rest_retry_s))
            attempt += 1

    async def _market_session(self, category: str, streams: list[str]) -> None:
        """One life of a combined market stream."""
        socket = self._socket_manager().futures_multiplex_socket(streams, category=category)
        socket.MAX_RECONNECTS = 0
        try:
            await socket.__aenter__()
            while not self._stopping:
                message = await socket.recv()
                if isinstance(message, Mapping) and message.get("e") == "error":
                    log.warning("Binance %s stream dropped: %s", category, message.get("m"))
                    return
                self._on_market_message(message)
        finally:
            await self._close_socket(socket)

    def _market_streams(self) -> list[str]:
        return [
            name
            for symbol in self.symbols
            for name in (f"{symbol.lower()}@markPrice@1s", f"{symbol.lower()}@kline_1m")
        ]

    def _depth_streams(self) -> list[str]:
        return [f"{s.lower()}@depth{self._depth_levels}@100ms" for s in self.symbols]

    # ------------------------------------------------------------------ stream messages

    def _on_user_message(self, message: Any) -> None:
        kind = message.get("e") if isinstance(message, Mapping) else None
        self._stream_seq += 1
        try:
            if kind == "ORDER_TRADE_UPDATE":
                self._on_order_trade_update(message)
            elif kind == "ACCOUNT_UPDATE":
                self._on_account_update(message)
            elif kind == "ACCOUNT_CONFIG_UPDATE":
                self._on_account_config_update(message)
            elif kind == "ALGO_UPDATE":
                algo_id = message.get("o", {}).get("aid")
                previous = self._orders.get(f"{mapping.ALGO_ORDER_PREFIX}{algo_id}")
                self._apply_order(
                    mapping.algo_update(message, chain_of=self._chain_of, previous=previous)
                )
            else:
                log.debug("ignored Binance user event %r", kind)
        except (mapping.BinancePayloadError, AttributeError) as error:
            if isinstance(error, AttributeError):
                error = mapping.BinancePayloadError(str(kind), "a field is not an object")
            self._count_malformed(error)

    def _on_order_trade_update(self, message: Mapping[str, Any]) -> None:
        order_id = str(message.get("o", {}).get("i"))
        update = mapping.order_trade_update(
            message, chain_of=self._chain_of, previous=self._orders.get(order_id)
        )
        self._apply_order(update.order)
        if update.trade is not None:
            self._apply_trade(update.trade)
        elif update.unnumbered_fill:
            log.info("Binance %s fill without a trade id; reconciling", update.order.reason)
            self._want(_RECONCILE)

    def _on_account_update(self, message: Mapping[str, Any]) -> None:
        update = mapping.account_update(
            message,
            positions=self._positions,
            balances=self._balances,
            mark_prices=self._mark_prices(),
            leverage=self._leverage,
        )
        for balance in update.balances:
            self._touched[f"balance:{balance.asset}"] = self._stream_seq
            self._apply_balance(balance)
        resized = False
        for position in update.positions:
            cached = self._positions.get(position.symbol)
            resized |= position.size != 0 and (cached is None or cached.size != position.size)
            self._touched[f"position:{position.symbol}"] = self._stream_seq
            self._apply_position(position)
        # ACCOUNT_UPDATE has no liquidation price (and no leverage): a position that opened or
        # changed size, or changed margin mode, learns them from Binance's position risk.
        if resized or update.reason == "MARGIN_TYPE_CHANGE":
            self._want(_POSITIONS)

    def _on_account_config_update(self, message: Mapping[str, Any]) -> None:
        """Leverage changed (here or elsewhere): the position shows it and the margin it
        implies at once, and Binance's own figures (liquidation price) after a refresh."""
        update = mapping.account_config_update(
            message, positions=self._positions, mark_prices=self._mark_prices()
        )
        if update.multi_assets is not None:
            log.info("Binance Multi-Assets mode is now %s", "on" if update.multi_assets else "off")
        if update.symbol is not None and update.leverage is not None:
            self._touched[f"position:{update.symbol}"] = self._stream_seq
            self._leverage_changed(update.symbol, update.leverage, update.position)

    def _leverage_changed(self, symbol: str, leverage: int, position: Position | None) -> None:
        """Keep a new leverage; report an open position at it, and refresh the positions for
        the liquidation price Binance computes. A flat position is only kept: reporting it
        could read as a close to a listener that has not yet seen the fill that opened it."""
        self._leverage[symbol] = leverage
        if position is None:
            return
        if position.size == 0:
            self._positions[symbol] = position
            return
        self._apply_position(position)
        self._want(_POSITIONS)

    def _mark_prices(self) -> dict[str, float]:
        return {symbol: mark.mark_price for symbol, mark in self._marks.items()}

    def _on_market_message(self, message: Any) -> None:
        try:
            data = mapping.market_event(message)
        except mapping.BinancePayloadError as error:
            self._count_malformed(error)
            return
        if isinstance(data, MarkPrice):
            self._marks[data.symbol] = data
        elif isinstance(data, Kline):
            candles = self._klines.setdefault(data.symbol, deque(maxlen=500))
            if candles and candles[-1].open_time == data.open_time:
                candles[-1] = data
            elif not candles or candles[-1].open_time < data.open_time:
                candles.append(data)
        else:
            self._books[data.symbol] = data
        if self._listener is not None:
            self._listener.on_market(data)

    # ------------------------------------------------------------------ cache and reporting

    def _apply_order(self, order: Order) -> None:
        cached = self._orders.get(order.order_id)
        if mapping.is_stale(cached, order) or cached == order:
            return
        self._orders[order.order_id] = order
        self._orders.move_to_end(order.order_id)
        self._prune_orders()
        if self._listener is not None:
            self._listener.on_order(self.owner, order)

    def _prune_orders(self) -> None:
        terminal = [k for k, o in self._orders.items() if o.status in mapping.TERMINAL_STATUSES]
        for key in terminal[: max(0, len(terminal) - _KEPT_TERMINAL_ORDERS)]:
            del self._orders[key]

    def _apply_trade(self, trade: Trade) -> None:
        key = (trade.symbol, mapping.trade_number(trade))
        if key in self._recent_trades:
            return
        self._remember_trade(*key)
        if self._listener is not None:
            self._listener.on_trade(self.owner, trade)

    def _remember_trade(self, symbol: str, trade_id: int) -> None:
        self._recent_trades[(symbol, trade_id)] = None
        while len(self._recent_trades) > _RECENT_TRADES:
            self._recent_trades.popitem(last=False)
        self._last_trade_id[symbol] = max(self._last_trade_id.get(symbol, trade_id), trade_id)

    def _apply_position(self, position: Position) -> None:
        cached = self._positions.get(position.symbol)
        if (
            cached is not None
            and cached.model_copy(update={"updated_at": position.updated_at}) == position
        ):
            return
        if cached is None and position.size == 0:
            self._positions[position.symbol] = position
            return
        self._positions[position.symbol] = position
        if self._listener is not None:
            self._listener.on_position(self.owner, position)

    def _apply_balance(self, balance: Balance) -> None:
        cached = self._balances.get(balance.asset)
        if (
            cached is not None
            and cached.model_copy(update={"updated_at": balance.updated_at}) == balance
        ):
            return
        self._balances[balance.asset] = balance
        if self._listener is not None:
            self._listener.on_balance(self.owner, balance)

    # ------------------------------------------------------------------ reconcile

    async def _reconcile(self) -> None:
        """Bring the cache, and through it the listener, up to date by REST.

        Order: orders first (open ones, then what became of the cached open ones that are no
        longer open), then the fills since the last one seen, then positions and balances.
        The first reconcile only learns which fills already happened; it reports none of them.
        """
        client = self._require_client()
        first = self.reconciles == 0
        open_items = await self._call(client.futures_get_open_orders)
        algo_items = await self._call(client.futures_get_open_orders, conditional=True)
        still_open: set[str] = set()
        for item in open_items:
            order = self._map(
                "open order",
                mapping.rest_order,
                item,
                chain_of=self._chain_of,
                previous=self._orders.get(str(item.get("orderId"))),
            )
            still_open.add(order.order_id)
            self._apply_order(order)
        for item in algo_items:
            order = self._map(
                "open algo order",
                mapping.rest_algo_order,
                item,
                chain_of=self._chain_of,
                previous=self._orders.get(f"{mapping.ALGO_ORDER_PREFIX}{item.get('algoId')}"),
            )
            still_open.add(order.order_id)
            self._apply_order(order)
        for cached in [o for o in self.open_orders(self.owner) if o.order_id not in still_open]:
            await self._refresh_order(cached)

        symbols = dict.fromkeys([*self.symbols, *(o.symbol for o in self._orders.values())])
        for symbol in symbols:
            await self._catch_up_fills(symbol, report=not first)

        await self._refresh_positions()
        seq = self._stream_seq
        balances = await self._call(client.futures_account_balance)
        now = self._clock.now_ms()
        for balance in self._map("balances", mapping.rest_balances, balances, now_ms=now):
            if self._touched.get(f"balance:{balance.asset}", 0) <= seq:
                self._apply_balance(balance)
        self._reconciled = True
        self.reconciles += 1
        log.info("Binance account reconciled (%d open orders)", len(self.open_orders(self.owner)))

    async def _refresh_positions(self) -> None:
        """Read the positions by REST; a symbol absent from the answer is flat. A position the
        stream changed while the request was out keeps the stream's value."""
        seq = self._stream_seq
        items = await self._call(self._require_client().futures_position_information)
        now = self._clock.now_ms()
        fresh = self._map(
            "position risk", mapping.rest_positions, items, previous=self._positions, now_ms=now
        )
        flat = {
            symbol: cached.model_copy(
                update={
                    "size": 0.0,
                    "unrealized_pnl": 0.0,
                    "margin": 0.0,
                    "liquidation_price": None,
                    "updated_at": now,
                }
            )
            for symbol, cached in self._positions.items()
            if cached.size != 0
        }
        flat.update({position.symbol: position for position in fresh})
        for symbol, position in flat.items():
            if self._touched.get(f"position:{symbol}", 0) <= seq:
                self._apply_position(position)

    async def _load_filters(self) -> None:
        """Read the order filters: exchangeInfo, and the leverage brackets for the maximum
        leverage (kept from the last read when the brackets cannot be had)."""
        client = self._require_client()
        info = await self._call(client.futures_exchange_info)
        try:
            brackets = await self._call(client.futures_leverage_bracket)
            max_leverage = self._map("leverage brackets", mapping.leverage_brackets, brackets)
        except ExchangeError as error:
            log.warning("Binance leverage brackets unavailable: %s", error.message)
            max_leverage = {
                f.symbol: f.max_leverage for f in self._filters.values() if f.max_leverage
            }
        self._filters = self._map(
            "exchange info", mapping.symbol_filters, info, max_leverage=max_leverage
        )
        weight_limit = self._map("exchange info", mapping.request_weight_limit, info)
        if weight_limit is not None:
            self.rate_limits.weight_limit = weight_limit

    async def _refresh_filters(self) -> None:
        """Read the order filters again every `filters_refresh_s`; a failed read keeps the
        filters known and is tried at the next turn."""
        while not self._stopping:
            await asyncio.sleep(self._filters_refresh_s)
            await self._rest_allowed()
            try:
                await self._load_filters()
            except ExchangeError as error:
                log.warning("Binance order filters not refreshed: %s", error.message)

    async def _refresh_order(self, cached: Order) -> None:
        """Ask Binance what became of an order that is no longer open."""
        client = self._require_client()
        if cached.order_id.startswith(mapping.ALGO_ORDER_PREFIX):
            algo_id = self._parse_id(cached.order_id[len(mapping.ALGO_ORDER_PREFIX) :])
            item = await self._read_back(cached.order_id, client.futures_get_order, algoId=algo_id)
            build = mapping.rest_algo_order
        else:
            item = await self._call(
                client.futures_get_order, symbol=cached.symbol, orderId=int(cached.order_id)
            )
            build = mapping.rest_order
        self._apply_order(self._map("order", build, item, chain_of=self._chain_of, previous=cached))

    async def _catch_up_fills(self, symbol: str, *, report: bool) -> None:
        """Report the fills of `symbol` made since the last one seen (by trade id)."""
        client = self._require_client()
        last = self._last_trade_id.get(symbol)
        if last is None:
            items = await self._call(client.futures_account_trades, symbol=symbol, limit=100)
        else:
            items = await self._call(
                client.futures_account_trades, symbol=symbol, fromId=last + 1, limit=1000
            )
        numbered = [(self._map("fill", mapping.rest_trade_number, item), item) for item in items]
        for trade_id, item in sorted(numbered, key=lambda pair: pair[0]):
            if (symbol, trade_id) in self._recent_trades:
                continue
            if not report:
                self._remember_trade(symbol, trade_id)
                continue
            order = await self._order_of_fill(symbol, str(item.get("orderId")))
            client_order_id = order.client_order_id if order is not None else ""
            self._apply_trade(
                self._map(
                    "fill",
                    mapping.rest_trade,
                    item,
                    client_order_id=client_order_id,
                    chain_of=self._chain_of,
                )
            )

    async def _order_of_fill(self, symbol: str, order_id: str) -> Order | None:
        """The order a recovered fill belongs to, refreshed unless already final."""
        order = self._orders.get(order_id)
        if order is not None and order.status in mapping.TERMINAL_STATUSES:
            return order
        item = await self._call(
            self._require_client().futures_get_order,
            symbol=symbol,
            orderId=self._parse_id(order_id),
        )
        self._apply_order(
            self._map("order", mapping.rest_order, item, chain_of=self._chain_of, previous=order)
        )
        return self._orders.get(order_id)


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
