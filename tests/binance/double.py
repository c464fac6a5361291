"""A test double of Binance USD-M futures on 127.0.0.1, for running the real python-binance.

It speaks the REST endpoints python-binance 1.0.37 calls (form bodies for POST/PUT/DELETE,
query strings for GET, HMAC-SHA256 signatures checked the way the library signs), and the
WebSocket streams: the user data stream at `/private/ws?listenKey=K` (or `/ws/K`) and combined
market streams at `/market/stream?streams=...`, `/public/stream?streams=...` (or `/stream`).
Every response carries `X-MBX-USED-WEIGHT-1M`, and order placements `X-MBX-ORDER-COUNT-10S` and
`-1M`.

Behind it sits a tiny one-way account: a USDT wallet, positions, orders, conditional (algo)
orders and fills. MARKET orders fill at once at the symbol's price; LIMIT orders rest until a
test calls `fill`. Fills move the position and the wallet and push ORDER_TRADE_UPDATE and
ACCOUNT_UPDATE to whatever user stream is connected with the current listenKey; with none
connected they are lost, as on Binance, and only REST shows them.

Test controls: `fill`, `trigger_algo`, `liquidate` (a liquidation or an auto-deleveraging close,
as Binance reports them), `drop_user_streams`, `rotate_listen_key`, `expire_listen_key`,
`block_user_streams` / `unblock_user_streams`, `fail` / `heal` (one endpoint answering 5xx, 429
or 418 with `Retry-After`), `hide_new_algo_orders` (the algo service not knowing a new
conditional order yet), `inject_user`, `push_market`, `inject_market`, and counters of listenKey
posts, keep-alives, connections and requests. A leverage change sends ACCOUNT_CONFIG_UPDATE.
It is not a matching engine: no order book, no funding, no liquidation engine of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Handler = Callable[[web.Request, dict[str, str]], Awaitable[Any]]

TAKER_FEE = 0.0004
MAKER_FEE = 0.0002


class ApiError(Exception):
    """A Binance error answer: HTTP status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass
class DoubleOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: float
    price: float
    stop_price: float
    reduce_only: bool
    time: int
    update_time: int
    status: str = "NEW"
    executed: float = 0.0
    cum_quote: float = 0.0

    @property
    def avg_price(self) -> float:
        return self.cum_quote / self.executed if self.executed else 0.0

    def rest(self) -> dict[str, Any]:
        return {
            "avgPrice": f"{self.avg_price:.5f}",
            "clientOrderId": self.client_order_id,
            "cumQuote": f"{self.cum_quote:.8f}",
            "executedQty": _s(self.executed),
            "orderId": self.order_id,
            "origQty": _s(self.quantity),
            "origType": self.type,
            "price": _s(self.price),
            "reduceOnly": self.reduce_only,
            "side": self.side,
            "positionSide": "BOTH",
            "status": self.status,
            "stopPrice": _s(self.stop_price),
            "closePosition": False,
            "symbol": self.symbol,
            "time": self.time,
            "timeInForce": "GTC",
            "type": self.type,
            "updateTime": self.update_time,
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
        }


@dataclass
class DoubleAlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    type: str
    quantity: float
    trigger_price: float
    reduce_only: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    actual_order_id: int | None = None
    executed: float = 0.0
    avg_price: float = 0.0

    def rest(self) -> dict[str, Any]:
        return {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.type,
            "symbol": self.symbol,
            "side": self.side,
            "positionSide": "BOTH",
            "timeInForce": "GTC",
            "quantity": _s(self.quantity),
            "algoStatus": self.status,
            "actualOrderId": str(self.actual_order_id or ""),
            "actualPrice": _s(self.avg_price),
            "executedQty": _s(self.executed),
            "triggerPrice": _s(self.trigger_price),
            "price": "0",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": self.reduce_only,
            "createTime": self.create_time,
            "updateTime": self.update_time,
            "triggerTime": 0,
            "goodTillDate": 0,
        }

    def event(self, now: int) -> dict[str, Any]:
        return {
            "e": "ALGO_UPDATE",
            "T": now,
            "E": now,
            "o": {
                "caid": self.client_algo_id,
                "aid": self.algo_id,
                "at": "CONDITIONAL",
                "o": self.type,
                "s": self.symbol,
                "S": self.side,
                "ps": "BOTH",
                "f": "GTC",
                "q": _s(self.quantity),
                "X": self.status,
                "ai": str(self.actual_order_id or ""),
                "ap": _s(self.avg_price),
                "aq": _s(self.executed),
                "act": "MARKET" if self.actual_order_id else "0",
                "tp": _s(self.trigger_price),
                "p": "0",
                "V": "EXPIRE_MAKER",
                "wt": "CONTRACT_PRICE",
                "pm": "NONE",
                "cp": False,
                "pP": False,
                "R": self.reduce_only,
                "tt": 0,
                "gtd": 0,
            },
        }


@dataclass
class DoublePosition:
    amount: float = 0.0
    entry: float = 0.0
    leverage: int = 20


@dataclass
class Failure:
    """How an endpoint fails: its HTTP status, `Retry-After` and how many more times."""

    status: int
    retry_after: float | None = None
    times: int | None = None
    """Answers still to fail; None for every one until `heal`."""


_FAILURE_BODIES: dict[int, dict[str, Any]] = {
    429: {"code": -1003, "msg": "Too many requests; current limit is 2400 requests per minute."},
    418: {"code": -1003, "msg": "Way too many requests; IP banned."},
}
"""Binance's answers to a rate-limited or banned caller; other statuses get a bare text body."""


@dataclass
class Counters:
    """What the double has seen, for tests to wait on."""

    listen_key_posts: int = 0
    keepalives: int = 0
    user_connections: int = 0
    market_connections: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)


def _s(value: float) -> str:
    """A decimal as Binance writes it: a string, no exponent."""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


_WEIGHTS = {
    "/fapi/v1/openOrders": 1,
    "/fapi/v3/positionRisk": 5,
    "/fapi/v3/balance": 5,
    "/fapi/v1/userTrades": 5,
    "/fapi/v1/klines": 2,
    "/fapi/v1/openAlgoOrders": 1,
}


class BinanceDouble:
    """Binance USD-M REST and streams on 127.0.0.1, port 0; see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str = "double-api-key",
        api_secret: str = "double-api-secret",
        prices: Mapping[str, float] | None = None,
        wallet: float = 10_000.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.prices: dict[str, float] = dict(prices or {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0})
        self.wallet = wallet
        self.positions: dict[str, DoublePosition] = {s: DoublePosition() for s in self.prices}
        self.orders: dict[int, DoubleOrder] = {}
        self.algo_orders: dict[int, DoubleAlgoOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.counters = Counters()
        self.listen_key: str | None = None
        self.user_streams_blocked = False
        self.failures: dict[str, Failure] = {}
        self.hidden_algo_reads = 0
        self._hidden_algo: dict[int, int] = {}
        self.max_leverage = 125
        self._orders_placed: list[float] = []
        self._user_sockets: dict[web.WebSocketResponse, str] = {}
        self._market_sockets: dict[web.WebSocketResponse, frozenset[str]] = {}
        self._next_order_id = 8_000_000
        self._next_algo_id = 2_000_000
        self._next_trade_id: dict[str, int] = {}
        self._last_ms = 0
        self._weight_minute = 0
        self._weight_used = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/fapi/v1/ping", self._ping, False),
            ("GET", "/fapi/v1/time", self._time, False),
            ("GET", "/fapi/v1/klines", self._klines, False),
            ("GET", "/fapi/v1/exchangeInfo", self._exchange_info, False),
            ("POST", "/fapi/v1/listenKey", self._listen_key_post, False),
            ("PUT", "/fapi/v1/listenKey", self._listen_key_put, False),
            ("DELETE", "/fapi/v1/listenKey", self._listen_key_delete, False),
            ("POST", "/fapi/v1/order", self._order_post, True),
            ("GET", "/fapi/v1/order", self._order_get, True),
            ("DELETE", "/fapi/v1/order", self._order_delete, True),
            ("GET", "/fapi/v1/openOrders", self._open_orders, True),
            ("POST", "/fapi/v1/algoOrder", self._algo_post, True),
            ("GET", "/fapi/v1/algoOrder", self._algo_get, True),
            ("DELETE", "/fapi/v1/algoOrder", self._algo_delete, True),
            ("GET", "/fapi/v1/openAlgoOrders", self._open_algo_orders, True),
            ("GET", "/fapi/v3/positionRisk", self._position_risk, True),
            ("GET", "/fapi/v3/balance", self._balance, True),
            ("GET", "/fapi/v1/userTrades", self._user_trades, True),
            ("POST", "/fapi/v1/leverage", self._leverage, True),
            ("GET", "/fapi/v1/leverageBracket", self._leverage_bracket, True),
        ]
        for method, path, handler, signed in routes:
            app.router.add_route(method, path, self._endpoint(path, handler, signed))
        app.router.add_get("/private/ws", self._user_ws)
        app.router.add_get("/ws/{listen_key}", self._user_ws)
        for prefix in ("/market", "/public", ""):
            app.router.add_get(f"{prefix}/stream", self._market_ws)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for ws in [*self._user_sockets, *self._market_sockets]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def futures_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fapi"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def user_stream_count(self) -> int:
        """User-stream connections open now."""
        return len(self._user_sockets)

    @property
    def market_stream_count(self) -> int:
        return len(self._market_sockets)

    # ------------------------------------------------------------------ test controls

    async def fill(
        self,
        order: int | str,
        *,
        quantity: float | None = None,
        price: float | None = None,
        maker: bool = True,
    ) -> dict[str, Any]:
        """Fill an open order (by id or client id), wholly or `quantity` of it."""
        found = self._find_order(order)
        if found is None or found.status not in ("NEW", "PARTIALLY_FILLED"):
            raise KeyError(f"no open order {order!r}")
        remaining = found.quantity - found.executed
        qty = remaining if quantity is None else min(quantity, remaining)
        fill_price = price if price is not None else (found.price or self.prices[found.symbol])
        return await self._fill(found, qty, fill_price, maker=maker)

    async def trigger_algo(self, client_algo_id: str, *, price: float | None = None) -> None:
        """Trigger a conditional order: it becomes a MARKET order that fills at once."""
        algo = next(
            (a for a in self.algo_orders.values() if a.client_algo_id == client_algo_id), None
        )
        if algo is None or algo.status != "NEW":
            raise KeyError(f"no open algo order {client_algo_id!r}")
        now = self._now()
        algo.status, algo.update_time = "TRIGGERED", now
        actual = self._new_order(
            symbol=algo.symbol,
            side=algo.side,
            type_="MARKET",
            quantity=algo.quantity,
            price=0.0,
            stop_price=0.0,
            reduce_only=algo.reduce_only,
            client_order_id=algo.client_algo_id,
        )
        algo.actual_order_id = actual.order_id
        await self._send_user(algo.event(now))
        await self._send_user(self._order_event(actual, "NEW"))
        fill_price = price if price is not None else algo.trigger_price
        await self._fill(actual, actual.quantity, fill_price, maker=False)
        algo.status, algo.update_time = "FINISHED", self._now()
        algo.executed, algo.avg_price = actual.executed, actual.avg_price
        await self._send_user(algo.event(algo.update_time))

    async def liquidate(
        self, symbol: str, price: float, *, adl: bool = False, numbered: bool = True
    ) -> dict[str, Any]:
        """Close the whole position of `symbol` at `price` the way Binance's liquidation engine
        does (client id `autoclose-<ms>`), or by auto-deleveraging (`adl_autoclose`): the order
        comes as NEW, then its fill as execution CALCULATED (without its trade id on the stream
        unless `numbered`), then ACCOUNT_UPDATE."""
        position = self.positions[symbol]
        if not position.amount:
            raise KeyError(f"no position in {symbol}")
        order = self._new_order(
            symbol=symbol,
            side="SELL" if position.amount > 0 else "BUY",
            type_="LIQUIDATION",
            quantity=abs(position.amount),
            price=price,
            stop_price=0.0,
            reduce_only=True,
            client_order_id="adl_autoclose" if adl else f"autoclose-{self._now()}",
        )
        await self._send_user(self._order_event(order, "NEW"))
        return await self._fill(
            order, order.quantity, price, maker=False, execution="CALCULATED", numbered=numbered
        )

    def fail(
        self,
        path: str,
        status: int = 503,
        *,
        retry_after: float | None = None,
        times: int | None = None,
    ) -> None:
        """Make the endpoint `path` (e.g. `/fapi/v3/positionRisk`) answer `status`: every time
        until `heal`, or the next `times` times."""
        self.failures[path] = Failure(status, retry_after, times)

    def heal(self, path: str) -> None:
        """Let the endpoint `path` answer normally again."""
        self.failures.pop(path, None)

    def hide_new_algo_orders(self, reads: int) -> None:
        """From now on a new conditional order is unknown (-2013 on GET, -2011 on DELETE, absent
        from openAlgoOrders) to its first `reads` requests, as the algo service can be."""
        self.hidden_algo_reads = reads

    def requests_to(self, path: str) -> int:
        """How many requests reached `path`."""
        return sum(1 for _, p in self.counters.requests if p == path)

    async def drop_user_streams(self) -> None:
        """Close every user-stream connection, as Binance does at the 24-hour mark."""
        for ws in list(self._user_sockets):
            await ws.close(code=1001, message=b"stream closed")

    async def rotate_listen_key(self) -> None:
        """Invalidate the listenKey (its streams close); the next POST creates a new one."""
        self.listen_key = None
        await self.drop_user_streams()

    async def expire_listen_key(self) -> None:
        """Send `listenKeyExpired` and invalidate the key; its connections stay open but mute."""
        key = self.listen_key
        if key is None:
            return
        self.listen_key = None
        payload = {"e": "listenKeyExpired", "E": str(self._now()), "listenKey": key}
        for ws, ws_key in list(self._user_sockets.items()):
            if ws_key == key:
                await self._send(ws, payload)

    def block_user_streams(self) -> None:
        """Refuse new user-stream connections (HTTP 503) until `unblock_user_streams`."""
        self.user_streams_blocked = True

    def unblock_user_streams(self) -> None:
        self.user_streams_blocked = False

    async def inject_user(self, payload: Any) -> None:
        """Send a raw payload on every live user stream."""
        for ws in list(self._user_sockets):
            await self._send(ws, payload)

    async def inject_market(self, stream: str, payload: Any) -> None:
        """Send a raw payload, wrapped as a combined-stream message, to subscribers of `stream`."""
        for ws, streams in list(self._market_sockets.items()):
            if stream in streams:
                await self._send(ws, {"stream": stream, "data": payload})

    async def push_market(self, symbol: str, *, price: float | None = None) -> None:
        """Move a symbol's price (if given) and publish its mark price, kline and depth."""
        if price is not None:
            self.prices[symbol] = price
        mark = self.prices[symbol]
        now = self._now()
        lower = symbol.lower()
        minute = now - now % 60_000
        await self.inject_market(
            f"{lower}@markPrice@1s",
            {
                "e": "markPriceUpdate",
                "E": now,
                "s": symbol,
                "p": _s(mark),
                "i": _s(mark * 0.9999),
                "P": _s(mark),
                "r": "0.00010000",
                "T": now - now % 28_800_000 + 28_800_000,
            },
        )
        await self.inject_market(
            f"{lower}@kline_1m",
            {
                "e": "kline",
                "E": now,
                "s": symbol,
                "k": {
                    "t": minute,
                    "T": minute + 59_999,
                    "s": symbol,
                    "i": "1m",
                    "f": 1,
                    "L": 2,
                    "o": _s(mark),
                    "c": _s(mark),
                    "h": _s(mark * 1.001),
                    "l": _s(mark * 0.999),
                    "v": "12.5",
                    "n": 2,
                    "x": False,
                    "q": _s(mark * 12.5),
                    "V": "6",
                    "Q": _s(mark * 6),
                    "B": "0",
                },
            },
        )
        step = mark * 0.0001
        await self.inject_market(
            f"{lower}@depth10@100ms",
            {
                "e": "depthUpdate",
                "E": now,
                "T": now,
                "s": symbol,
                "U": 1,
                "u": 2,
                "pu": 0,
                "b": [[_s(mark - step * (i + 1)), _s(1.0 + i)] for i in range(10)],
                "a": [[_s(mark + step * (i + 1)), _s(1.0 + i)] for i in range(10)],
            },
        )

    # ------------------------------------------------------------------ account model

    def _now(self) -> int:
        """Wall-clock milliseconds, strictly increasing so events order by time."""
        self._last_ms = max(self._last_ms + 1, time.time_ns() // 1_000_000)
        return self._last_ms

    def _find_order(self, key: int | str) -> DoubleOrder | None:
        if isinstance(key, int):
            return self.orders.get(key)
        return next((o for o in self.orders.values() if o.client_order_id == key), None)

    def _new_order(
        self,
        *,
        symbol: str,
        side: str,
        type_: str,
        quantity: float,
        price: float,
        stop_price: float,
        reduce_only: bool,
        client_order_id: str,
    ) -> DoubleOrder:
        self._next_order_id += 1
        now = self._now()
        order = DoubleOrder(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type_,
            quantity=quantity,
            price=price,
            stop_price=stop_price,
            reduce_only=reduce_only,
            time=now,
            update_time=now,
        )
        self.orders[order.order_id] = order
        return order

    def _margin_used(self) -> float:
        used = sum(
            abs(p.amount) * p.entry / p.leverage for p in self.positions.values() if p.amount
        )
        for order in self.orders.values():
            if order.status in ("NEW", "PARTIALLY_FILLED") and not order.reduce_only:
                price = order.price or self.prices[order.symbol]
                leverage = self.positions[order.symbol].leverage
                used += (order.quantity - order.executed) * price / leverage
        return used

    def liquidation_price(self, symbol: str) -> float:
        """The double's liquidation price of a position: its entry moved by 1/leverage."""
        position = self.positions[symbol]
        if not position.amount:
            return 0.0
        direction = 1 if position.amount > 0 else -1
        return position.entry * (1 - direction / position.leverage)

    def _unrealized(self, symbol: str) -> float:
        position = self.positions[symbol]
        return position.amount * (self.prices[symbol] - position.entry)

    def available(self) -> float:
        unrealized = sum(self._unrealized(s) for s in self.positions)
        return self.wallet + unrealized - self._margin_used()

    async def _fill(
        self,
        order: DoubleOrder,
        qty: float,
        price: float,
        *,
        maker: bool,
        execution: str = "TRADE",
        numbered: bool = True,
    ) -> dict[str, Any]:
        symbol = order.symbol
        position = self.positions[symbol]
        signed = qty if order.side == "BUY" else -qty
        realized = 0.0
        if position.amount and position.amount * signed < 0:
            closed = min(abs(signed), abs(position.amount))
            realized = closed * (price - position.entry) * (1 if position.amount > 0 else -1)
        new_amount = position.amount + signed
        if abs(new_amount) < 1e-12:
            position.amount, position.entry = 0.0, 0.0
        elif position.amount * new_amount < 0 or position.amount == 0:
            position.amount, position.entry = new_amount, price
        elif abs(new_amount) > abs(position.amount):
            position.entry = (position.entry * abs(position.amount) + price * qty) / abs(new_amount)
            position.amount = new_amount
        else:
            position.amount = new_amount
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        self.wallet += realized - fee
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed >= order.quantity - 1e-12 else "PARTIALLY_FILLED"
        now = self._now()
        order.update_time = now
        self._next_trade_id[symbol] = self._next_trade_id.get(symbol, 700_000) + 1
        trade = {
            "buyer": order.side == "BUY",
            "commission": f"{fee:.8f}",
            "commissionAsset": "USDT",
            "id": self._next_trade_id[symbol],
            "maker": maker,
            "orderId": order.order_id,
            "price": _s(price),
            "qty": _s(qty),
            "quoteQty": _s(qty * price),
            "realizedPnl": f"{realized:.8f}",
            "side": order.side,
            "positionSide": "BOTH",
            "symbol": symbol,
            "time": now,
        }
        self.trades.append(trade)
        event = self._order_event(order, execution)
        event["o"].update(
            l=_s(qty), L=_s(price), n=f"{fee:.8f}", N="USDT", t=trade["id"] if numbered else 0,
            m=maker,
            rp=f"{realized:.8f}",
        )  # fmt: skip
        await self._send_user(event)
        await self._send_user(self._account_event(symbol, now))
        return trade

    def _order_event(self, order: DoubleOrder, execution: str) -> dict[str, Any]:
        now = order.update_time
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": now,
            "T": now,
            "o": {
                "s": order.symbol,
                "c": order.client_order_id,
                "S": order.side,
                "o": order.type,
                "f": "GTC",
                "q": _s(order.quantity),
                "p": _s(order.price),
                "ap": _s(order.avg_price),
                "sp": _s(order.stop_price),
                "x": execution,
                "X": order.status,
                "i": order.order_id,
                "l": "0",
                "z": _s(order.executed),
                "L": "0",
                "n": "0",
                "N": "USDT",
                "T": now,
                "t": 0,
                "b": "0",
                "a": "0",
                "m": False,
                "R": order.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": order.type,
                "ps": "BOTH",
                "cp": False,
                "rp": "0",
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_TAKER",
                "pm": "NONE",
                "gtd": 0,
                "er": "0",
            },
        }

    def _account_event(self, symbol: str, now: int) -> dict[str, Any]:
        position = self.positions[symbol]
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": "ORDER",
                "B": [
                    {
                        "a": "USDT",
                        "wb": f"{self.wallet:.8f}",
                        "cw": f"{self.wallet:.8f}",
                        "bc": "0",
                    }
                ],
                "P": [
                    {
                        "s": symbol,
                        "pa": _s(position.amount),
                        "ep": _s(position.entry),
                        "bep": _s(position.entry),
                        "cr": "0",
                        "up": f"{self._unrealized(symbol):.8f}",
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                ],
            },
        }

    # ------------------------------------------------------------------ HTTP plumbing

    def _endpoint(self, path: str, handler: Handler, signed: bool) -> Any:
        async def run(request: web.Request) -> web.Response:
            self.counters.requests.append((request.method, path))
            weight = _WEIGHTS.get(path, 1)
            if path == "/fapi/v1/openOrders" and "symbol" not in request.query:
                weight = 40
            minute = int(time.time() // 60)
            if minute != self._weight_minute:
                self._weight_minute, self._weight_used = minute, 0
            self._weight_used += weight
            headers = {"X-MBX-USED-WEIGHT-1M": str(self._weight_used)}
            failure = self.failures.get(path)
            if failure is not None:
                return self._failure_response(path, failure, headers)
            if request.method == "POST" and path in ("/fapi/v1/order", "/fapi/v1/algoOrder"):
                headers.update(self._order_counts())
            try:
                pairs = await self._params(request)
                if signed or path == "/fapi/v1/listenKey":
                    self._check_key(request)
                if signed:
                    self._check_signature(pairs)
                body = await handler(request, dict(pairs))
            except ApiError as error:
                return web.json_response(
                    {"code": error.code, "msg": error.msg}, status=error.status, headers=headers
                )
            return web.json_response(body, headers=headers)

        return run

    def _failure_response(
        self, path: str, failure: Failure, headers: dict[str, str]
    ) -> web.Response:
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                self.heal(path)
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        body = _FAILURE_BODIES.get(failure.status)
        if body is None:
            return web.Response(status=failure.status, text="Service Unavailable", headers=headers)
        return web.json_response(body, status=failure.status, headers=headers)

    def _order_counts(self) -> dict[str, str]:
        now = time.monotonic()
        self._orders_placed = [t for t in self._orders_placed if now - t < 60] + [now]
        recent = sum(1 for t in self._orders_placed if now - t < 10)
        return {
            "X-MBX-ORDER-COUNT-10S": str(recent),
            "X-MBX-ORDER-COUNT-1M": str(len(self._orders_placed)),
        }

    @staticmethod
    async def _params(request: web.Request) -> list[tuple[str, str]]:
        pairs = [(k, v) for k, v in request.query.items()]
        if request.method in ("POST", "PUT", "DELETE") and request.can_read_body:
            form = await request.post()
            pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
        return pairs

    def _check_key(self, request: web.Request) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def _check_signature(self, pairs: list[tuple[str, str]]) -> None:
        params = [(k, v) for k, v in pairs if k != "signature"]
        signature = next((v for k, v in pairs if k == "signature"), None)
        if signature is None or not any(k == "timestamp" for k, _ in params):
            raise ApiError(400, -1102, "Mandatory parameter 'signature' or 'timestamp' missing.")
        query = "&".join(f"{k}={urllib.parse.quote(v) if k == 'symbol' else v}" for k, v in params)
        expected = hmac.new(self.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise ApiError(400, -1022, "Signature for this request is not valid.")

    def _symbol(self, params: Mapping[str, str]) -> str:
        symbol = params.get("symbol", "")
        if symbol not in self.prices:
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    @staticmethod
    def _float(params: Mapping[str, str], key: str, default: float | None = None) -> float:
        if key not in params:
            if default is None:
                raise ApiError(400, -1102, f"Mandatory parameter '{key}' was not sent.")
            return default
        try:
            return float(params[key])
        except ValueError:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{key}'.") from None

    # ------------------------------------------------------------------ REST handlers

    async def _ping(self, request: web.Request, params: dict[str, str]) -> Any:
        return {}

    async def _time(self, request: web.Request, params: dict[str, str]) -> Any:
        return {"serverTime": self._now()}

    async def _exchange_info(self, request: web.Request, params: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            "rateLimits": [
                {
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                    "rateLimitType": "REQUEST_WEIGHT",
                },
                {"interval": "MINUTE", "intervalNum": 1, "limit": 1200, "rateLimitType": "ORDERS"},
            ],
            "symbols": [
                {
                    "symbol": symbol,
                    "status": "TRADING",
                    "contractType": "PERPETUAL",
                    "baseAsset": symbol.removesuffix("USDT"),
                    "quoteAsset": "USDT",
                    "marginAsset": "USDT",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.10",
                            "maxPrice": "4529764",
                            "tickSize": "0.10",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.001",
                            "maxQty": "1000",
                            "stepSize": "0.001",
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": "100"},
                    ],
                }
                for symbol in self.prices
            ],
        }

    async def _klines(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        limit = min(int(params.get("limit", "500")), 1500)
        rng = random.Random(symbol)
        now = self._now()
        start = now - now % 60_000 - (limit - 1) * 60_000
        price = self.prices[symbol]
        rows = []
        for i in range(limit):
            open_ = price * (1 + rng.uniform(-0.002, 0.002))
            close = price * (1 + rng.uniform(-0.002, 0.002))
            t = start + i * 60_000
            rows.append(
                [t, _s(open_), _s(max(open_, close) * 1.0005), _s(min(open_, close) * 0.9995),
                 _s(close), "10.0", t + 59_999, _s(close * 10), 5, "5.0", _s(close * 5), "0"]
            )  # fmt: skip
        return rows

    async def _listen_key_post(self, request: web.Request, params: dict[str, str]) -> Any:
        self.counters.listen_key_posts += 1
        if self.listen_key is None:
            self.listen_key = secrets.token_urlsafe(48)
        return {"listenKey": self.listen_key}

    async def _listen_key_put(self, request: web.Request, params: dict[str, str]) -> Any:
        if params.get("listenKey") != self.listen_key or self.listen_key is None:
            raise ApiError(400, -1125, "This listenKey does not exist.")
        self.counters.keepalives += 1
        return {"listenKey": self.listen_key}

    async def _listen_key_delete(self, request: web.Request, params: dict[str, str]) -> Any:
        if params.get("listenKey") == self.listen_key:
            await self.rotate_listen_key()
        return {}

    async def _order_post(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        side, type_ = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if type_ not in ("LIMIT", "MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        quantity = self._float(params, "quantity")
        price = self._float(params, "price", 0.0 if type_ == "MARKET" else None)
        if quantity <= 0:
            raise ApiError(400, -4003, "Quantity less than or equal to zero.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_order_id = params.get("newClientOrderId") or f"double-{secrets.token_hex(8)}"
        if any(
            o.client_order_id == client_order_id and o.status in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders.values()
        ):
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        reference = price or self.prices[symbol]
        if not reduce_only:
            needed = quantity * reference / self.positions[symbol].leverage
            if needed > self.available():
                raise ApiError(400, -2019, "Margin is insufficient.")
        order = self._new_order(
            symbol=symbol,
            side=side,
            type_=type_,
            quantity=quantity,
            price=price,
            stop_price=0.0,
            reduce_only=reduce_only,
            client_order_id=client_order_id,
        )
        await self._send_user(self._order_event(order, "NEW"))
        if type_ == "MARKET":
            await self._fill(order, quantity, self.prices[symbol], maker=False)
        return order.rest()

    def _order_from(self, params: Mapping[str, str]) -> DoubleOrder:
        symbol = self._symbol(params)
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            order = self._find_order(params["origClientOrderId"])
        else:
            raise ApiError(400, -1102, "Either orderId or origClientOrderId must be sent.")
        if order is None or order.symbol != symbol:
            raise ApiError(400, -2013, "Order does not exist.")
        return order

    async def _order_get(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._order_from(params).rest()

    async def _order_delete(self, request: web.Request, params: dict[str, str]) -> Any:
        try:
            order = self._order_from(params)
        except ApiError as error:
            if error.code == -2013:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise ApiError(400, -2011, "Unknown order sent.")
        order.status, order.update_time = "CANCELED", self._now()
        await self._send_user(self._order_event(order, "CANCELED"))
        return order.rest()

    async def _open_orders(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = params.get("symbol")
        return [
            o.rest()
            for o in self.orders.values()
            if o.status in ("NEW", "PARTIALLY_FILLED") and symbol in (None, o.symbol)
        ]

    async def _algo_post(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        type_ = params.get("type")
        if type_ not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        if params.get("algoType") != "CONDITIONAL":
            raise ApiError(400, -1102, "Mandatory parameter 'algoType' was not sent.")
        self._next_algo_id += 1
        now = self._now()
        algo = DoubleAlgoOrder(
            algo_id=self._next_algo_id,
            client_algo_id=params.get("clientAlgoId") or f"double-{secrets.token_hex(8)}",
            symbol=symbol,
            side=params.get("side", "BUY"),
            type=type_,
            quantity=self._float(params, "quantity"),
            trigger_price=self._float(params, "triggerPrice"),
            reduce_only=params.get("reduceOnly", "false").lower() == "true",
            create_time=now,
            update_time=now,
        )
        self.algo_orders[algo.algo_id] = algo
        if self.hidden_algo_reads:
            self._hidden_algo[algo.algo_id] = self.hidden_algo_reads
        await self._send_user(algo.event(now))
        return algo.rest()

    def _algo_from(self, params: Mapping[str, str], *, unknown: ApiError) -> DoubleAlgoOrder:
        if "algoId" in params:
            algo = self.algo_orders.get(int(params["algoId"]))
        else:
            key = params.get("clientAlgoId")
            algo = next((a for a in self.algo_orders.values() if a.client_algo_id == key), None)
        if algo is None:
            raise unknown
        hidden = self._hidden_algo.get(algo.algo_id, 0)
        if hidden:
            self._hidden_algo[algo.algo_id] = hidden - 1
            raise unknown
        return algo

    async def _algo_get(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._algo_from(params, unknown=ApiError(400, -2013, "Order does not exist.")).rest()

    async def _algo_delete(self, request: web.Request, params: dict[str, str]) -> Any:
        algo = self._algo_from(params, unknown=ApiError(400, -2011, "Unknown order sent."))
        if algo.status != "NEW":
            raise ApiError(400, -2011, "Unknown order sent.")
        algo.status, algo.update_time = "CANCELED", self._now()
        await self._send_user(algo.event(algo.update_time))
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    async def _open_algo_orders(self, request: web.Request, params: dict[str, str]) -> Any:
        return [
            a.rest()
            for a in self.algo_orders.values()
            if a.status == "NEW" and not self._hidden_algo.get(a.algo_id)
        ]

    async def _position_risk(self, request: web.Request, params: dict[str, str]) -> Any:
        rows = []
        for symbol, position in self.positions.items():
            if not position.amount:
                continue
            mark = self.prices[symbol]
            notional = position.amount * mark
            margin = abs(notional) / position.leverage
            rows.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": _s(position.amount),
                    "entryPrice": _s(position.entry),
                    "breakEvenPrice": _s(position.entry),
                    "markPrice": _s(mark),
                    "unRealizedProfit": f"{self._unrealized(symbol):.8f}",
                    "liquidationPrice": _s(self.liquidation_price(symbol)),
                    "isolatedMargin": "0",
                    "notional": f"{notional:.8f}",
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": f"{margin:.8f}",
                    "maintMargin": f"{margin / 10:.8f}",
                    "positionInitialMargin": f"{margin:.8f}",
                    "openOrderInitialMargin": "0",
                    "adl": 1,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": self._now(),
                }
            )
        return rows

    async def _balance(self, request: web.Request, params: dict[str, str]) -> Any:
        unrealized = sum(self._unrealized(s) for s in self.positions)
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": f"{self.wallet:.8f}",
                "crossWalletBalance": f"{self.wallet:.8f}",
                "crossUnPnl": f"{unrealized:.8f}",
                "availableBalance": f"{self.available():.8f}",
                "maxWithdrawAmount": f"{max(0.0, self.available()):.8f}",
                "marginAvailable": True,
                "updateTime": self._now(),
            }
        ]

    async def _user_trades(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        limit = min(int(params.get("limit", "500")), 1000)
        rows = [t for t in self.trades if t["symbol"] == symbol]
        if "orderId" in params:
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if "fromId" in params:
            rows = [t for t in rows if t["id"] >= int(params["fromId"])][:limit]
        else:
            rows = rows[-limit:]
        return rows

    async def _leverage(self, request: web.Request, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        leverage = int(self._float(params, "leverage"))
        if not 1 <= leverage <= self.max_leverage:
            raise ApiError(400, -4028, "Leverage is not valid.")
        self.positions[symbol].leverage = leverage
        now = self._now()
        await self._send_user(
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now, "ac": {"s": symbol, "l": leverage}}
        )
        return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}

    async def _leverage_bracket(self, request: web.Request, params: dict[str, str]) -> Any:
        return [
            {
                "symbol": symbol,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": self.max_leverage,
                        "notionalCap": 50000,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    }
                ],
            }
            for symbol in self.prices
        ]

    # ------------------------------------------------------------------ WebSocket streams

    async def _user_ws(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info.get("listen_key") or request.query.get("listenKey")
        if self.user_streams_blocked:
            raise web.HTTPServiceUnavailable(text="user data streams unavailable")
        if key is None or key != self.listen_key:
            raise web.HTTPBadRequest(text="invalid listenKey")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.counters.user_connections += 1
        self._user_sockets[ws] = key
        try:
            await self._drain(ws)
        finally:
            self._user_sockets.pop(ws, None)
        return ws

    async def _market_ws(self, request: web.Request) -> web.StreamResponse:
        streams = frozenset(s for s in request.query.get("streams", "").split("/") if s)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.counters.market_connections += 1
        self._market_sockets[ws] = streams
        try:
            await self._drain(ws)
        finally:
            self._market_sockets.pop(ws, None)
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def _send_user(self, payload: Any) -> None:
        for ws, key in list(self._user_sockets.items()):
            if key == self.listen_key:
                await self._send(ws, payload)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload: Any) -> None:
        if ws.closed:
            return
        text = payload if isinstance(payload, str) else json.dumps(payload)
        try:
            await ws.send_str(text)
        except ConnectionError:
            return


def market_streams(symbols: Iterable[str]) -> list[str]:
    """The market stream names the exchange subscribes to for `symbols`."""
    names = []
    for symbol in symbols:
        lower = symbol.lower()
        names += [f"{lower}@markPrice@1s", f"{lower}@kline_1m", f"{lower}@depth10@100ms"]
    return names
