"""A manual order checked against the exchange's own filters before anything is sent.

`check_order` turns what the trader asked for (quantity or USDT notional, limit price, exits,
leverage) into the quantity and prices to send, or raises `OrderInvalid` naming the field and
the bound it breaks: the tick size, the step size, the minimum quantity and notional, the
largest leverage, the margin available, and exits on the right side of the entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ginie_protocol.events import Side

_EPS = 1e-9


class OrderInvalid(ValueError):
    """An order the exchange would refuse; `field` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Filters:
    """What the venue accepts for one symbol (see `exchange.base.SymbolFilters`)."""

    tick_size: float
    step_size: float
    min_qty: float
    min_notional: float
    max_leverage: int | None


@dataclass(frozen=True, slots=True)
class Request:
    """What the trader asked for, as the command's arguments carry it."""

    symbol: str
    side: Side
    type: Literal["MARKET", "LIMIT"]
    quantity: float | None
    notional: float | None
    price: float | None
    take_profit: float | None
    stop_loss: float | None
    leverage: int


@dataclass(frozen=True, slots=True)
class Checked:
    """An order fit to send: its quantity, reference price, notional and margin."""

    quantity: float
    reference_price: float
    notional: float
    margin: float


def _multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) <= 1e-6


def _text(value: float) -> str:
    return f"{value:.10g}"


def check_order(
    request: Request, filters: Filters, mark: float | None, available: float
) -> Checked:
    """The order to send for `request`, or `OrderInvalid` (see the module docstring).

    A MARKET order is valued at `mark`, a LIMIT order at its price; `available` is the margin
    the account has free in USDT.
    """
    symbol = request.symbol
    if request.type == "LIMIT":
        assert request.price is not None
        if not _multiple(request.price, filters.tick_size):
            raise OrderInvalid(
                "price",
                f"{_text(request.price)} is not a multiple of the tick size "
                f"{_text(filters.tick_size)} of {symbol}",
            )
        reference = request.price
    else:
        if mark is None or mark <= 0:
            raise OrderInvalid("symbol", f"no mark price of {symbol} yet to value the order")
        reference = mark
    smallest = max(filters.min_qty, filters.step_size)
    if request.quantity is not None:
        quantity = request.quantity
        if quantity + _EPS < smallest:
            raise OrderInvalid(
                "quantity",
                f"{_text(quantity)} is below the step size and minimum quantity "
                f"{_text(smallest)} of {symbol}",
            )
        if not _multiple(quantity, filters.step_size):
            raise OrderInvalid(
                "quantity",
                f"{_text(quantity)} is not a multiple of the step size "
                f"{_text(filters.step_size)} of {symbol}",
            )
    else:
        assert request.notional is not None
        steps = math.floor(request.notional / reference / filters.step_size + _EPS)
        quantity = round(steps * filters.step_size, 10)
    field = "quantity" if request.quantity is not None else "notional"
    if quantity + _EPS < smallest:
        raise OrderInvalid(
            field,
            f"buys {_text(quantity)}, below the step size and minimum quantity "
            f"{_text(smallest)} of {symbol}",
        )
    notional = quantity * reference
    if notional + _EPS < filters.min_notional:
        raise OrderInvalid(
            field,
            f"notional {notional:.2f} USDT is below the minimum {filters.min_notional:.2f} "
            f"of {symbol}",
        )
    if filters.max_leverage is not None and request.leverage > filters.max_leverage:
        raise OrderInvalid(
            "leverage",
            f"{request.leverage} is above the largest {filters.max_leverage} of {symbol}",
        )
    _check_exits(request, filters, reference)
    margin = notional / request.leverage
    if margin > available + _EPS:
        raise OrderInvalid(
            field, f"the margin {margin:.2f} USDT is more than the {available:.2f} USDT available"
        )
    return Checked(quantity, reference, round(notional, 8), round(margin, 8))


def _check_exits(request: Request, filters: Filters, reference: float) -> None:
    buy = request.side == "BUY"
    for field, price in (("take_profit", request.take_profit), ("stop_loss", request.stop_loss)):
        if price is None:
            continue
        if not _multiple(price, filters.tick_size):
            raise OrderInvalid(
                field,
                f"{_text(price)} is not a multiple of the tick size {_text(filters.tick_size)}",
            )
        above = price > reference
        wanted_above = buy if field == "take_profit" else not buy
        if above != wanted_above or price == reference:
            where = "above" if wanted_above else "below"
            raise OrderInvalid(
                field,
                f"{_text(price)} must be {where} the entry {_text(reference)} of a "
                f"{request.side} order",
            )
