"""Binance USD-M payloads to protocol models: pure functions, strict about what they accept.

Every function takes one decoded JSON payload (a user-data event, a market-stream event or a
REST response item) exactly as Binance documents it, and returns protocol models. A payload that
lacks a field, carries a field of the wrong type or an unknown enum value raises
`BinancePayloadError` naming the event and the field, so the caller can log it, count it and go
on; nothing here does I/O or keeps state.

Lossy corners, chosen on purpose:
- Order types outside the protocol's four map to the nearest one (`_ORDER_TYPES`); liquidation
  and auto-deleveraging orders become MARKET orders with reason `liquidation` or
  `auto-deleveraging` (see `special_reason`), and their fills (execution type `CALCULATED`) are
  trades like any other.
- Positions are one-way: hedge-mode legs of a symbol are netted into one signed position.
- Fees are reported as positive costs (`abs` of Binance's commission).
- ACCOUNT_UPDATE carries no available balance; the cross wallet balance stands in for it until
  the next REST reconcile.
- A position's `margin` is its isolated wallet when isolated, else its initial margin (notional
  at the mark price over the leverage).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, TypeVar

from ginie_protocol.events import (
    Balance,
    Kline,
    MarkPrice,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Trade,
)
from ginie_server.exchange.base import SymbolFilters

_T = TypeVar("_T")

ChainOf = Callable[[str], str | None]
"""Given a client order id, the id of the chain it belongs to, if any."""


class BinancePayloadError(ValueError):
    """A Binance payload that does not match its documented shape."""

    def __init__(self, event: str, detail: str) -> None:
        super().__init__(f"malformed {event} payload: {detail}")
        self.event = event
        self.detail = detail


_ORDER_TYPES: dict[str, OrderType] = {
    "LIMIT": "LIMIT",
    "MARKET": "MARKET",
    "STOP_MARKET": "STOP_MARKET",
    "TAKE_PROFIT_MARKET": "TAKE_PROFIT_MARKET",
    "STOP": "STOP_MARKET",
    "TAKE_PROFIT": "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET": "STOP_MARKET",
    "LIQUIDATION": "MARKET",
}

_ORDER_STATUSES: dict[str, OrderStatus] = {
    "NEW": "NEW",
    "PARTIALLY_FILLED": "PARTIALLY_FILLED",
    "FILLED": "FILLED",
    "CANCELED": "CANCELED",
    "EXPIRED": "EXPIRED",
    "EXPIRED_IN_MATCH": "EXPIRED",
    "REJECTED": "REJECTED",
}

_SIDES: dict[str, Side] = {"BUY": "BUY", "SELL": "SELL"}

_EXECUTION_TYPES = frozenset({"NEW", "CANCELED", "CALCULATED", "EXPIRED", "TRADE", "AMENDMENT"})

_EXPIRY_REASONS: dict[int, str] = {
    1: "self-trade prevention",
    2: "IOC not fully filled",
    3: "IOC not fully filled (self-trade prevention)",
    4: "knocked out by a higher-priority reduce-only order",
    5: "account liquidated",
    6: "GTE condition not satisfied",
    7: "symbol delisted",
    8: "stop order expired after triggering",
    9: "market order not filled within price limits",
}

_ALGO_STATUSES: dict[str, OrderStatus] = {
    "NEW": "NEW",
    "TRIGGERING": "NEW",
    "TRIGGERED": "NEW",
    "CANCELED": "CANCELED",
    "REJECTED": "REJECTED",
    "EXPIRED": "EXPIRED",
}

ALGO_ORDER_PREFIX = "algo-"
"""Prefix of the `order_id` of a conditional (algo service) order, whose ids are a separate
namespace on Binance."""

TERMINAL_STATUSES: frozenset[str] = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED"})


def trade_key(symbol: str, trade_id: int) -> str:
    """A fill's `trade_id`: Binance numbers trades per symbol, so the symbol makes it unique."""
    return f"{symbol}-{trade_id}"


def trade_number(trade: Trade) -> int:
    """Binance's per-symbol number of a fill, back from its `trade_id`."""
    return int(trade.trade_id.rsplit("-", 1)[1])


# ------------------------------------------------------------------------------ field readers


def _field(event: str, data: Mapping[str, Any], key: str) -> Any:
    if not isinstance(data, Mapping):
        raise BinancePayloadError(event, f"expected an object, got {type(data).__name__}")
    if key not in data:
        raise BinancePayloadError(event, f"missing field {key!r}")
    return data[key]


def _text(event: str, data: Mapping[str, Any], key: str) -> str:
    value = _field(event, data, key)
    if not isinstance(value, str):
        raise BinancePayloadError(event, f"field {key!r} is not a string: {value!r}")
    return value


def _number(event: str, data: Mapping[str, Any], key: str) -> float:
    """A decimal Binance sends as a string (or, in a few places, a JSON number)."""
    value = _field(event, data, key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BinancePayloadError(event, f"field {key!r} is not a number: {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise BinancePayloadError(event, f"field {key!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise BinancePayloadError(event, f"field {key!r} is not finite: {value!r}")
    return number


def _optional_number(event: str, data: Mapping[str, Any], key: str) -> float | None:
    """A number where Binance writes zero (or leaves the field out) for 'not set'."""
    if key not in data or data[key] in ("", None):
        return None
    number = _number(event, data, key)
    return number if number != 0 else None


_DIGITS = re.compile(r"-?[0-9]+")
"""An integer as a string: ASCII digits only (`str.isdigit` also accepts '²' and the like)."""


def _integer(event: str, data: Mapping[str, Any], key: str) -> int:
    """An integer, also accepted as a string of digits (some events send times as strings)."""
    value = _field(event, data, key)
    if isinstance(value, bool):
        raise BinancePayloadError(event, f"field {key!r} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise BinancePayloadError(event, f"field {key!r} is not an integer: {value!r}")


def _flag(event: str, data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, bool):
        raise BinancePayloadError(event, f"field {key!r} is not a boolean: {value!r}")
    return value


def _enum(event: str, data: Mapping[str, Any], key: str, table: Mapping[str, _T]) -> _T:
    value = _text(event, data, key)
    if value not in table:
        raise BinancePayloadError(event, f"field {key!r} has unknown value {value!r}")
    return table[value]


def _list(event: str, data: Mapping[str, Any], key: str) -> list[Any]:
    value = _field(event, data, key)
    if not isinstance(value, list):
        raise BinancePayloadError(event, f"field {key!r} is not a list: {value!r}")
    return value


def _object(event: str, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = _field(event, data, key)
    if not isinstance(value, Mapping):
        raise BinancePayloadError(event, f"field {key!r} is not an object: {value!r}")
    return value


def _no_chain(_client_order_id: str) -> str | None:
    return None


# ------------------------------------------------------------------------------ user data stream


@dataclass(frozen=True, slots=True)
class OrderTradeUpdate:
    """An ORDER_TRADE_UPDATE: the order as it now stands and, on a fill, the fill itself.

    `unnumbered_fill` is set for a liquidation fill that came without a trade id: it cannot be
    told apart from its REST copy, so it is left for the REST fills to report.
    """

    order: Order
    trade: Trade | None
    event_time: int
    unnumbered_fill: bool = False


LIQUIDATION = "liquidation"
AUTO_DELEVERAGING = "auto-deleveraging"
SETTLEMENT = "settlement"


def special_reason(client_order_id: str, order_type: object) -> str | None:
    """The `reason` of an order Binance placed itself, from its documented special client ids:
    `adl_autoclose` (auto-deleveraging), `autoclose-...` or type LIQUIDATION (liquidation),
    `settlement_autoclose-...` (delisting or delivery); None for any other order."""
    if client_order_id.startswith("adl_autoclose"):
        return AUTO_DELEVERAGING
    if client_order_id.startswith("autoclose-") or order_type == "LIQUIDATION":
        return LIQUIDATION
    if client_order_id.startswith("settlement_autoclose-"):
        return SETTLEMENT
    return None


def _order_reason(event: str, o: Mapping[str, Any], client_order_id: str) -> str | None:
    special = special_reason(client_order_id, o.get("o"))
    if special is not None:
        return special
    if "er" in o:
        code = _integer(event, o, "er")
        if code:
            return _EXPIRY_REASONS.get(code, f"expired (reason {code})")
    return None


def order_trade_update(
    payload: Mapping[str, Any],
    *,
    chain_of: ChainOf = _no_chain,
    previous: Order | None = None,
) -> OrderTradeUpdate:
    """Map an ORDER_TRADE_UPDATE event; `previous` (the cached order) supplies `created_at`."""
    event = "ORDER_TRADE_UPDATE"
    if _text(event, payload, "e") != event:
        raise BinancePayloadError(event, f"event type is {payload.get('e')!r}")
    event_time = _integer(event, payload, "E")
    o = _object(event, payload, "o")
    execution = _text(event, o, "x")
    if execution not in _EXECUTION_TYPES:
        raise BinancePayloadError(event, f"field 'x' has unknown value {execution!r}")
    client_order_id = _text(event, o, "c")
    order_id = str(_integer(event, o, "i"))
    symbol = _text(event, o, "s")
    side = _enum(event, o, "S", _SIDES)
    updated_at = _integer(event, o, "T")
    order = Order(
        order_id=order_id,
        client_order_id=client_order_id,
        chain_id=chain_of(client_order_id),
        symbol=symbol,
        side=side,
        type=_enum(event, o, "o", _ORDER_TYPES),
        status=_enum(event, o, "X", _ORDER_STATUSES),
        price=_optional_number(event, o, "p"),
        stop_price=_optional_number(event, o, "sp"),
        quantity=_number(event, o, "q"),
        filled_qty=_number(event, o, "z"),
        avg_price=_optional_number(event, o, "ap"),
        reduce_only=_flag(event, o, "R"),
        reason=_order_reason(event, o, client_order_id),
        created_at=previous.created_at if previous is not None else updated_at,
        updated_at=updated_at,
    )
    # A fill is a TRADE execution, or a CALCULATED one (liquidation or auto-deleveraging).
    if not (execution == "TRADE" or (execution == "CALCULATED" and _number(event, o, "l") > 0)):
        return OrderTradeUpdate(order=order, trade=None, event_time=event_time)
    number = _integer(event, o, "t") if execution == "TRADE" or "t" in o else 0
    if execution == "CALCULATED" and number <= 0:
        return OrderTradeUpdate(
            order=order, trade=None, event_time=event_time, unnumbered_fill=True
        )
    trade = Trade(
        trade_id=trade_key(symbol, number),
        order_id=order_id,
        client_order_id=client_order_id,
        chain_id=order.chain_id,
        symbol=symbol,
        side=side,
        price=_number(event, o, "L"),
        quantity=_number(event, o, "l"),
        fee=abs(_number(event, o, "n")) if "n" in o else 0.0,
        fee_asset=_text(event, o, "N") if "N" in o else "USDT",
        realized_pnl=_number(event, o, "rp") if "rp" in o else 0.0,
        maker=_flag(event, o, "m"),
        time=updated_at,
    )
    return OrderTradeUpdate(order=order, trade=trade, event_time=event_time)


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """An ACCOUNT_UPDATE: the balances and positions it reports, already merged with the cache."""

    reason: str
    balances: list[Balance]
    positions: list[Position]
    event_time: int


@dataclass(slots=True)
class _Leg:
    size: float = 0.0
    entry_price: float = 0.0
    unrealized_pnl: float = 0.0
    margin: float = 0.0


def _net_legs(legs: list[tuple[float, float, float, float]]) -> _Leg:
    """Net one-way or hedge legs (size, entry, unrealized, margin) into one signed position.

    The entry price is the size-weighted entry of the legs on the side of the net size.
    """
    net = _Leg()
    for size, _entry, unrealized, margin in legs:
        net.size += size
        net.unrealized_pnl += unrealized
        net.margin += margin
    same_side = [(s, e) for s, e, _, _ in legs if s * net.size > 0]
    total = sum(abs(s) for s, _ in same_side)
    net.entry_price = sum(abs(s) * e for s, e in same_side) / total if total else 0.0
    return net


def _finite_leg(event: str, symbol: str, net: _Leg) -> _Leg:
    """`net`, if netting its legs kept every number finite (huge legs can overflow)."""
    if not all(map(math.isfinite, (net.size, net.entry_price, net.unrealized_pnl, net.margin))):
        raise BinancePayloadError(event, f"position {symbol!r} overflows when netted")
    return net


def _initial_margin(size: float, mark: float, leverage: int) -> float:
    """The initial margin of a position: its notional at `mark` over its leverage."""
    return abs(size) * mark / max(1, leverage)


def account_update(
    payload: Mapping[str, Any],
    *,
    positions: Mapping[str, Position],
    balances: Mapping[str, Balance],
    mark_prices: Mapping[str, float],
    leverage: Mapping[str, int] | None = None,
) -> AccountUpdate:
    """Map an ACCOUNT_UPDATE event.

    ACCOUNT_UPDATE carries neither mark price, leverage nor liquidation price, nor the available
    balance: those come from the cached `positions` / `balances`, the latest `mark_prices` and,
    for a symbol without a cached position, the `leverage` last set (default 1).
    """
    event = "ACCOUNT_UPDATE"
    if _text(event, payload, "e") != event:
        raise BinancePayloadError(event, f"event type is {payload.get('e')!r}")
    event_time = _integer(event, payload, "E")
    updated_at = _integer(event, payload, "T") if "T" in payload else event_time
    a = _object(event, payload, "a")
    reason = _text(event, a, "m")

    new_balances = []
    for item in _list(event, a, "B"):
        asset = _text(event, item, "a")
        previous = balances.get(asset)
        new_balances.append(
            Balance(
                asset=asset,
                wallet_balance=_number(event, item, "wb"),
                available_balance=_number(event, item, "cw"),
                unrealized_pnl=previous.unrealized_pnl if previous else 0.0,
                margin_used=previous.margin_used if previous else 0.0,
                updated_at=updated_at,
            )
        )

    legs: dict[str, list[tuple[float, float, float, float]]] = {}
    for item in _list(event, a, "P"):
        symbol = _text(event, item, "s")
        legs.setdefault(symbol, []).append(
            (
                _number(event, item, "pa"),
                _number(event, item, "ep"),
                _number(event, item, "up"),
                _number(event, item, "iw") if "iw" in item else 0.0,
            )
        )
    new_positions = []
    for symbol, symbol_legs in legs.items():
        net = _finite_leg(event, symbol, _net_legs(symbol_legs))
        previous_position = positions.get(symbol)
        mark = mark_prices.get(symbol)
        if mark is None:
            mark = previous_position.mark_price if previous_position else net.entry_price
        symbol_leverage = (
            previous_position.leverage
            if previous_position is not None
            else (leverage or {}).get(symbol, 1)
        )
        if net.margin == 0:
            net.margin = _initial_margin(net.size, mark, symbol_leverage)
            if not math.isfinite(net.margin):
                raise BinancePayloadError(event, f"position {symbol!r} overflows its margin")
        new_positions.append(
            Position(
                symbol=symbol,
                size=net.size,
                entry_price=net.entry_price,
                mark_price=mark,
                unrealized_pnl=net.unrealized_pnl,
                leverage=symbol_leverage,
                liquidation_price=(
                    previous_position.liquidation_price
                    if previous_position is not None and net.size != 0
                    else None
                ),
                margin=net.margin,
                updated_at=updated_at,
            )
        )
    return AccountUpdate(
        reason=reason, balances=new_balances, positions=new_positions, event_time=event_time
    )


@dataclass(frozen=True, slots=True)
class AccountConfigUpdate:
    """An ACCOUNT_CONFIG_UPDATE: a symbol's new leverage, or the account's Multi-Assets mode.

    `position` is the cached position of `symbol` with the new leverage and the margin it implies
    (None when there is no cached position); its liquidation price stays the cached one until
    Binance's position risk reports the new one.
    """

    event_time: int
    symbol: str | None
    leverage: int | None
    multi_assets: bool | None
    position: Position | None


def account_config_update(
    payload: Mapping[str, Any],
    *,
    positions: Mapping[str, Position],
    mark_prices: Mapping[str, float],
) -> AccountConfigUpdate:
    """Map an ACCOUNT_CONFIG_UPDATE event (`ac`: a symbol's leverage; `ai`: Multi-Assets mode)."""
    event = "ACCOUNT_CONFIG_UPDATE"
    if _text(event, payload, "e") != event:
        raise BinancePayloadError(event, f"event type is {payload.get('e')!r}")
    event_time = _integer(event, payload, "E")
    updated_at = _integer(event, payload, "T") if "T" in payload else event_time
    if "ai" in payload:
        multi_assets = _flag(event, _object(event, payload, "ai"), "j")
        return AccountConfigUpdate(event_time, None, None, multi_assets, None)
    ac = _object(event, payload, "ac")
    symbol = _text(event, ac, "s")
    leverage = _integer(event, ac, "l")
    if leverage < 1:
        raise BinancePayloadError(event, f"leverage {leverage} is below 1")
    cached = positions.get(symbol)
    position = None
    if cached is not None:
        position = with_leverage(cached, leverage, mark_prices.get(symbol), updated_at)
    return AccountConfigUpdate(event_time, symbol, leverage, None, position)


def with_leverage(position: Position, leverage: int, mark: float | None, now_ms: int) -> Position:
    """`position` at a new `leverage`, with the initial margin that implies at `mark` (default:
    its own mark price); its liquidation price is kept until Binance reports the new one."""
    price = position.mark_price if mark is None else mark
    return position.model_copy(
        update={
            "leverage": leverage,
            "margin": _initial_margin(position.size, price, leverage),
            "mark_price": price,
            "updated_at": max(position.updated_at, now_ms),
        }
    )


def algo_update(
    payload: Mapping[str, Any],
    *,
    chain_of: ChainOf = _no_chain,
    previous: Order | None = None,
) -> Order:
    """Map an ALGO_UPDATE (a conditional order of Binance's algo service) to an Order.

    A FINISHED algo order is FILLED when its triggered order filled the whole quantity,
    otherwise CANCELED; its fills arrive as ORDER_TRADE_UPDATEs of the triggered order.
    """
    event = "ALGO_UPDATE"
    if _text(event, payload, "e") != event:
        raise BinancePayloadError(event, f"event type is {payload.get('e')!r}")
    updated_at = _integer(event, payload, "E")
    o = _object(event, payload, "o")
    return _algo_order(
        event,
        updated_at=updated_at,
        created_at=previous.created_at if previous else updated_at,
        algo_id=_integer(event, o, "aid"),
        client_algo_id=_text(event, o, "caid"),
        symbol=_text(event, o, "s"),
        side=_enum(event, o, "S", _SIDES),
        type_=_enum(event, o, "o", _ORDER_TYPES),
        status=_text(event, o, "X"),
        quantity=_number(event, o, "q"),
        filled_qty=_number(event, o, "aq") if o.get("aq") not in (None, "") else 0.0,
        avg_price=_optional_number(event, o, "ap"),
        price=_optional_number(event, o, "p"),
        stop_price=_optional_number(event, o, "tp"),
        reduce_only=_flag(event, o, "R"),
        chain_of=chain_of,
    )


def _algo_order(
    event: str,
    *,
    updated_at: int,
    created_at: int,
    algo_id: int,
    client_algo_id: str,
    symbol: str,
    side: Side,
    type_: OrderType,
    status: str,
    quantity: float,
    filled_qty: float,
    avg_price: float | None,
    price: float | None,
    stop_price: float | None,
    reduce_only: bool,
    chain_of: ChainOf,
) -> Order:
    if status == "FINISHED":
        mapped: OrderStatus = "FILLED" if filled_qty >= quantity > 0 else "CANCELED"
    elif status in _ALGO_STATUSES:
        mapped = _ALGO_STATUSES[status]
    else:
        raise BinancePayloadError(event, f"unknown algo status {status!r}")
    return Order(
        order_id=f"{ALGO_ORDER_PREFIX}{algo_id}",
        client_order_id=client_algo_id,
        chain_id=chain_of(client_algo_id),
        symbol=symbol,
        side=side,
        type=type_,
        status=mapped,
        price=price,
        stop_price=stop_price,
        quantity=quantity,
        filled_qty=filled_qty,
        avg_price=avg_price,
        reduce_only=reduce_only,
        created_at=created_at,
        updated_at=updated_at,
    )


def listen_key_expired(payload: Mapping[str, Any]) -> str:
    """The listenKey a `listenKeyExpired` event names."""
    event = "listenKeyExpired"
    if _text(event, payload, "e") != event:
        raise BinancePayloadError(event, f"event type is {payload.get('e')!r}")
    return _text(event, payload, "listenKey")


# ------------------------------------------------------------------------------ market streams


def mark_price_update(payload: Mapping[str, Any]) -> MarkPrice:
    """Map a `<symbol>@markPrice` event."""
    event = "markPriceUpdate"
    return MarkPrice(
        symbol=_text(event, payload, "s"),
        mark_price=_number(event, payload, "p"),
        index_price=_number(event, payload, "i"),
        funding_rate=_number(event, payload, "r") if payload.get("r") not in (None, "") else 0.0,
        next_funding_time=_integer(event, payload, "T"),
        time=_integer(event, payload, "E"),
    )


def kline_update(payload: Mapping[str, Any]) -> Kline:
    """Map a `<symbol>@kline_<interval>` event."""
    event = "kline"
    k = _object(event, payload, "k")
    return Kline(
        symbol=_text(event, k, "s"),
        interval=_text(event, k, "i"),
        open_time=_integer(event, k, "t"),
        close_time=_integer(event, k, "T"),
        open=_number(event, k, "o"),
        high=_number(event, k, "h"),
        low=_number(event, k, "l"),
        close=_number(event, k, "c"),
        volume=_number(event, k, "v"),
        closed=_flag(event, k, "x"),
    )


def _levels(event: str, data: Mapping[str, Any], key: str) -> list[tuple[float, float]]:
    levels = []
    for level in _list(event, data, key):
        if not isinstance(level, list) or len(level) != 2:
            raise BinancePayloadError(event, f"field {key!r} has a bad level {level!r}")
        pair = {"price": level[0], "qty": level[1]}
        levels.append((_number(event, pair, "price"), _number(event, pair, "qty")))
    return levels


def depth_update(payload: Mapping[str, Any]) -> OrderBook:
    """Map a partial book depth event (`<symbol>@depth<levels>@<speed>`)."""
    event = "depthUpdate"
    return OrderBook(
        symbol=_text(event, payload, "s"),
        bids=_levels(event, payload, "b"),
        asks=_levels(event, payload, "a"),
        time=_integer(event, payload, "E"),
    )


def market_event(payload: Mapping[str, Any]) -> MarkPrice | Kline | OrderBook:
    """Map one market-stream event (bare, or wrapped as `{"stream": ..., "data": ...}`)."""
    data = payload.get("data", payload) if isinstance(payload, Mapping) else payload
    kind = _text("market stream", data, "e")
    if kind == "markPriceUpdate":
        return mark_price_update(data)
    if kind == "kline":
        return kline_update(data)
    if kind == "depthUpdate":
        return depth_update(data)
    raise BinancePayloadError("market stream", f"unknown event type {kind!r}")


# ------------------------------------------------------------------------------ REST responses


def rest_order(
    item: Mapping[str, Any], *, chain_of: ChainOf = _no_chain, previous: Order | None = None
) -> Order:
    """Map an order from POST/GET/DELETE /fapi/v1/order or GET /fapi/v1/openOrders."""
    event = "order"
    updated_at = _integer(event, item, "updateTime")
    if "time" in item:
        created_at = _integer(event, item, "time")
    else:
        created_at = previous.created_at if previous is not None else updated_at
    client_order_id = _text(event, item, "clientOrderId")
    return Order(
        order_id=str(_integer(event, item, "orderId")),
        client_order_id=client_order_id,
        chain_id=chain_of(client_order_id),
        symbol=_text(event, item, "symbol"),
        side=_enum(event, item, "side", _SIDES),
        type=_enum(event, item, "origType" if "origType" in item else "type", _ORDER_TYPES),
        status=_enum(event, item, "status", _ORDER_STATUSES),
        price=_optional_number(event, item, "price"),
        stop_price=_optional_number(event, item, "stopPrice"),
        quantity=_number(event, item, "origQty"),
        filled_qty=_number(event, item, "executedQty"),
        avg_price=_optional_number(event, item, "avgPrice"),
        reduce_only=_flag(event, item, "reduceOnly"),
        reason=special_reason(client_order_id, item.get("origType", item.get("type"))),
        created_at=created_at,
        updated_at=updated_at,
    )


def rest_algo_order(
    item: Mapping[str, Any], *, chain_of: ChainOf = _no_chain, previous: Order | None = None
) -> Order:
    """Map a conditional order from /fapi/v1/algoOrder or /fapi/v1/openAlgoOrders."""
    event = "algoOrder"
    updated_at = _integer(event, item, "updateTime")
    created_at = _integer(event, item, "createTime") if "createTime" in item else updated_at
    filled_key = "executedQty" if "executedQty" in item else "actualQty"
    return _algo_order(
        event,
        updated_at=updated_at,
        created_at=previous.created_at if previous is not None else created_at,
        algo_id=_integer(event, item, "algoId"),
        client_algo_id=_text(event, item, "clientAlgoId"),
        symbol=_text(event, item, "symbol"),
        side=_enum(event, item, "side", _SIDES),
        type_=_enum(event, item, "orderType", _ORDER_TYPES),
        status=_text(event, item, "algoStatus"),
        quantity=_number(event, item, "quantity"),
        filled_qty=(
            _number(event, item, filled_key) if item.get(filled_key) not in (None, "") else 0.0
        ),
        avg_price=_optional_number(event, item, "avgPrice"),
        price=_optional_number(event, item, "price"),
        stop_price=_optional_number(event, item, "triggerPrice"),
        reduce_only=_flag(event, item, "reduceOnly"),
        chain_of=chain_of,
    )


def rest_trade(
    item: Mapping[str, Any], *, client_order_id: str, chain_of: ChainOf = _no_chain
) -> Trade:
    """Map a fill from GET /fapi/v1/userTrades (which does not carry the client order id)."""
    event = "userTrades"
    symbol = _text(event, item, "symbol")
    return Trade(
        trade_id=trade_key(symbol, _integer(event, item, "id")),
        order_id=str(_integer(event, item, "orderId")),
        client_order_id=client_order_id,
        chain_id=chain_of(client_order_id),
        symbol=symbol,
        side=_enum(event, item, "side", _SIDES),
        price=_number(event, item, "price"),
        quantity=_number(event, item, "qty"),
        fee=abs(_number(event, item, "commission")),
        fee_asset=_text(event, item, "commissionAsset"),
        realized_pnl=_number(event, item, "realizedPnl"),
        maker=_flag(event, item, "maker"),
        time=_integer(event, item, "time"),
    )


def rest_trade_number(item: Mapping[str, Any]) -> int:
    """The per-symbol number of a fill from GET /fapi/v1/userTrades."""
    return _integer("userTrades", item, "id")


def rest_positions(
    items: list[Any], *, previous: Mapping[str, Position], now_ms: int
) -> list[Position]:
    """Map GET /fapi/v3/positionRisk, netting hedge legs per symbol.

    v3 no longer reports leverage; it is derived from notional / initial margin when a position
    is open, else kept from the cache (default 1). The margin is the isolated wallet of an
    isolated position, else the initial margin.
    """
    event = "positionRisk"
    if not isinstance(items, list):
        raise BinancePayloadError(event, "expected a list")
    legs: dict[str, list[tuple[float, float, float, float]]] = {}
    marks: dict[str, float] = {}
    liquidation: dict[str, float | None] = {}
    leverage: dict[str, int] = {}
    updated: dict[str, int] = {}
    for item in items:
        symbol = _text(event, item, "symbol")
        size = _number(event, item, "positionAmt")
        margin = _number(event, item, "initialMargin") if "initialMargin" in item else 0.0
        isolated = _number(event, item, "isolatedWallet") if "isolatedWallet" in item else 0.0
        legs.setdefault(symbol, []).append(
            (
                size,
                _number(event, item, "entryPrice"),
                _number(event, item, "unRealizedProfit"),
                isolated or margin,
            )
        )
        marks[symbol] = _number(event, item, "markPrice")
        liquidation[symbol] = _optional_number(event, item, "liquidationPrice")
        if "leverage" in item:
            leverage[symbol] = _integer(event, item, "leverage")
        elif size and "notional" in item and margin > 0:
            leverage[symbol] = max(1, round(abs(_number(event, item, "notional")) / margin))
        updated[symbol] = _integer(event, item, "updateTime") if "updateTime" in item else now_ms
    positions = []
    for symbol, symbol_legs in legs.items():
        net = _finite_leg(event, symbol, _net_legs(symbol_legs))
        cached = previous.get(symbol)
        positions.append(
            Position(
                symbol=symbol,
                size=net.size,
                entry_price=net.entry_price,
                mark_price=marks[symbol],
                unrealized_pnl=net.unrealized_pnl,
                leverage=leverage.get(symbol, cached.leverage if cached else 1),
                liquidation_price=liquidation[symbol] if net.size else None,
                margin=net.margin,
                updated_at=updated[symbol],
            )
        )
    return positions


def rest_balances(items: list[Any], *, now_ms: int) -> list[Balance]:
    """Map GET /fapi/v3/balance."""
    event = "balance"
    if not isinstance(items, list):
        raise BinancePayloadError(event, "expected a list")
    balances = []
    for item in items:
        wallet = _number(event, item, "balance")
        available = _number(event, item, "availableBalance")
        unrealized = _number(event, item, "crossUnPnl") if "crossUnPnl" in item else 0.0
        margin_used = max(0.0, wallet + unrealized - available)
        if not math.isfinite(margin_used):
            raise BinancePayloadError(event, "the margin in use overflows")
        balances.append(
            Balance(
                asset=_text(event, item, "asset"),
                wallet_balance=wallet,
                available_balance=available,
                unrealized_pnl=unrealized,
                margin_used=margin_used,
                updated_at=_integer(event, item, "updateTime") if "updateTime" in item else now_ms,
            )
        )
    return balances


def rest_klines(symbol: str, items: list[Any], *, interval: str = "1m") -> list[Kline]:
    """Map GET /fapi/v1/klines rows `[openTime, open, high, low, close, volume, closeTime, ...]`.

    The last row is the forming candle.
    """
    event = "klines"
    if not isinstance(items, list):
        raise BinancePayloadError(event, "expected a list")
    klines = []
    for index, row in enumerate(items):
        if not isinstance(row, list) or len(row) < 7:
            raise BinancePayloadError(event, f"row {index} is not a kline: {row!r}")
        named = dict(zip(("t", "o", "h", "l", "c", "v", "T"), row[:7], strict=True))
        klines.append(
            Kline(
                symbol=symbol,
                interval=interval,
                open_time=_integer(event, named, "t"),
                close_time=_integer(event, named, "T"),
                open=_number(event, named, "o"),
                high=_number(event, named, "h"),
                low=_number(event, named, "l"),
                close=_number(event, named, "c"),
                volume=_number(event, named, "v"),
                closed=index < len(items) - 1,
            )
        )
    return klines


def symbol_filters(
    exchange_info: Mapping[str, Any], *, max_leverage: Mapping[str, int] | None = None
) -> dict[str, SymbolFilters]:
    """Map GET /fapi/v1/exchangeInfo to each symbol's order filters.

    PRICE_FILTER gives the tick, LOT_SIZE the step and the minimum quantity, MIN_NOTIONAL the
    minimum order value (0 when absent). exchangeInfo has no leverage: `max_leverage` comes from
    `leverage_brackets`.
    """
    event = "exchangeInfo"
    result = {}
    for item in _list(event, exchange_info, "symbols"):
        symbol = _text(event, item, "symbol")
        filters = {
            f.get("filterType"): f for f in _list(event, item, "filters") if isinstance(f, Mapping)
        }
        if "LOT_SIZE" not in filters or "PRICE_FILTER" not in filters:
            raise BinancePayloadError(event, f"symbol {symbol!r} lacks its filters")
        lot = filters["LOT_SIZE"]
        notional = filters.get("MIN_NOTIONAL")
        result[symbol] = SymbolFilters(
            symbol=symbol,
            tick_size=_number(event, filters["PRICE_FILTER"], "tickSize"),
            step_size=_number(event, lot, "stepSize"),
            min_qty=_number(event, lot, "minQty") if "minQty" in lot else 0.0,
            min_notional=_number(event, notional, "notional") if notional is not None else 0.0,
            max_leverage=(max_leverage or {}).get(symbol),
        )
    return result


def leverage_brackets(items: Any) -> dict[str, int]:
    """Map GET /fapi/v1/leverageBracket to each symbol's highest initial leverage."""
    event = "leverageBracket"
    if not isinstance(items, list):
        raise BinancePayloadError(event, "expected a list")
    result = {}
    for item in items:
        brackets = _list(event, item, "brackets")
        if not brackets:
            raise BinancePayloadError(event, f"symbol {item.get('symbol')!r} has no brackets")
        result[_text(event, item, "symbol")] = max(
            _integer(event, bracket, "initialLeverage") for bracket in brackets
        )
    return result


def to_step(value: float, step: float) -> str:
    """`value` floored to a multiple of `step` (no flooring when `step` is 0), as a plain
    decimal string."""
    number = Decimal(repr(value))
    increment = Decimal(repr(step))
    if increment > 0:
        number = (number / increment).to_integral_value(rounding=ROUND_FLOOR) * increment
    return format(number.normalize(), "f") if number else "0"


def is_stale(cached: Order | None, incoming: Order) -> bool:
    """Whether `incoming` is older news than `cached` and must not overwrite it.

    An order never leaves a terminal status, and never goes back in time or in filled quantity.
    """
    if cached is None:
        return False
    if cached.status in TERMINAL_STATUSES and incoming.status not in TERMINAL_STATUSES:
        return True
    if incoming.updated_at < cached.updated_at:
        return True
    return incoming.filled_qty < cached.filled_qty


def request_weight_limit(exchange_info: Mapping[str, Any]) -> int | None:
    """The request weight allowed per minute, from exchangeInfo's `rateLimits` (None if absent)."""
    event = "exchangeInfo"
    if "rateLimits" not in exchange_info:
        return None
    for item in _list(event, exchange_info, "rateLimits"):
        if (
            isinstance(item, Mapping)
            and item.get("rateLimitType") == "REQUEST_WEIGHT"
            and item.get("interval") == "MINUTE"
            and item.get("intervalNum") == 1
        ):
            return _integer(event, item, "limit")
    return None
