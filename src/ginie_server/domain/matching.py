"""A paper futures account: order matching, fees, one-way positions, margin and liquidation.

Pure and synchronous: every call takes the market prices it needs and returns the account
events it caused, in the order an exchange reports them (for a fill: the trade, the order,
the position, the balance). The account holds USDT only, uses isolated margin per position
and the same maintenance margin rate for every symbol.

Matching rules:
- MARKET fills at once at the best ask (buy) or bid (sell), as taker.
- LIMIT that crosses the book fills at once at the touch as taker; otherwise it rests and
  fills at its price, as maker, when the price reaches it.
- STOP_MARKET triggers when the price reaches the stop against the position (buy: price at or
  above the stop; sell: at or below); TAKE_PROFIT_MARKET when it reaches it in favour (buy: at or
  below; sell: at or above). A triggered order fills as a market order. Placing one that would
  trigger at once is refused.
- Reduce-only orders never open or grow a position: they are refused when placed against no
  position or on the side that would grow it, filled at most for the position's size, and
  expire when they trigger against a flat position.
- A position whose mark crosses its liquidation price is closed at that price.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ginie_protocol.events import Balance, Order, OrderType, Position, Side, Trade

MAKER_FEE = 0.0002
TAKER_FEE = 0.0005
MAINTENANCE_MARGIN = 0.005
DEFAULT_LEVERAGE = 10
START_BALANCE = 10_000.0
_EPS = 1e-12

AccountEvent = Order | Trade | Position | Balance


class OrderRejected(Exception):
    """The account refused an order. `code` is short and stable, `message` readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Quote:
    """Where a symbol trades now: mark, best bid and best ask."""

    mark: float
    bid: float
    ask: float


def apply_fill(size: float, entry: float, qty: float, price: float) -> tuple[float, float, float]:
    """A one-way position after a fill of signed `qty` at `price`: (size, entry, realized).

    Adding keeps a weighted entry; reducing realizes P&L on the closed part at the old entry;
    crossing through zero closes the old side and opens the rest at the fill price.
    """
    if abs(size) < _EPS or size * qty > 0:
        new_size = size + qty
        new_entry = (abs(size) * entry + abs(qty) * price) / abs(new_size)
        return new_size, new_entry, 0.0
    closed = min(abs(qty), abs(size))
    realized = closed * (price - entry) * (1.0 if size > 0 else -1.0)
    new_size = size + qty
    if abs(new_size) < _EPS:
        return 0.0, 0.0, realized
    if new_size * size < 0:
        return new_size, price, realized
    return new_size, entry, realized


def liquidation_price(size: float, entry: float, leverage: int) -> float | None:
    """Isolated-margin liquidation price of a position, or None when flat."""
    if abs(size) < _EPS:
        return None
    if size > 0:
        return entry * (1.0 - 1.0 / leverage + MAINTENANCE_MARGIN)
    return entry * (1.0 + 1.0 / leverage - MAINTENANCE_MARGIN)


@dataclass(slots=True)
class _Pos:
    size: float = 0.0
    entry: float = 0.0
    leverage: int = DEFAULT_LEVERAGE
    mark: float = 0.0

    @property
    def margin(self) -> float:
        return abs(self.size) * self.entry / self.leverage

    @property
    def unrealized(self) -> float:
        return self.size * (self.mark - self.entry) if self.size else 0.0


@dataclass(slots=True)
class PaperAccount:
    """One user's paper account. Mutated in place; each call returns the events it caused."""

    wallet: float = START_BALANCE
    positions: dict[str, _Pos] = field(default_factory=dict)
    open_orders: dict[str, Order] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    next_order: int = 1
    next_trade: int = 1

    # ------------------------------------------------------------------ snapshots

    def position(self, symbol: str, now: int) -> Position:
        pos = self.positions.get(symbol) or _Pos(
            leverage=self.leverage.get(symbol, DEFAULT_LEVERAGE)
        )
        return Position(
            symbol=symbol,
            size=_clean(pos.size),
            entry_price=pos.entry,
            mark_price=pos.mark,
            unrealized_pnl=round(pos.unrealized, 8),
            leverage=pos.leverage,
            liquidation_price=liquidation_price(pos.size, pos.entry, pos.leverage),
            margin=round(pos.margin, 8),
            updated_at=now,
        )

    def balance(self, now: int) -> Balance:
        used = sum(p.margin for p in self.positions.values())
        unrealized = sum(p.unrealized for p in self.positions.values())
        return Balance(
            asset="USDT",
            wallet_balance=round(self.wallet, 8),
            available_balance=round(max(0.0, self.wallet + unrealized - used), 8),
            unrealized_pnl=round(unrealized, 8),
            margin_used=round(used, 8),
            updated_at=now,
        )

    def open_positions(self, now: int) -> list[Position]:
        return [self.position(s, now) for s, p in self.positions.items() if abs(p.size) > _EPS]

    def restore(self, wallet: float, positions: list[Position], orders: list[Order]) -> None:
        """Load the state an earlier run reported: wallet, positions and open orders."""
        self.wallet = wallet
        for p in positions:
            self.positions[p.symbol] = _Pos(p.size, p.entry_price, p.leverage, p.mark_price)
            self.leverage[p.symbol] = p.leverage
        for o in orders:
            if o.status in ("NEW", "PARTIALLY_FILLED"):
                self.open_orders[o.order_id] = o
        numbers = [int(o.order_id[1:]) for o in orders if o.order_id[1:].isdigit()]
        self.next_order = max([self.next_order - 1, *numbers]) + 1

    # ------------------------------------------------------------------ orders

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Leverage for new positions in `symbol`; a flat position takes it at once."""
        if not 1 <= leverage <= 125:
            raise OrderRejected("bad_leverage", f"leverage {leverage} outside 1..125")
        self.leverage[symbol] = leverage
        pos = self.positions.get(symbol)
        if pos is not None and abs(pos.size) < _EPS:
            pos.leverage = leverage

    def place(
        self,
        *,
        symbol: str,
        side: Side,
        type: OrderType,
        quantity: float,
        client_order_id: str,
        quote: Quote,
        now: int,
        price: float | None = None,
        stop_price: float | None = None,
        reduce_only: bool = False,
    ) -> tuple[Order, list[AccountEvent]]:
        """Accept an order and fill what fills at once; raises OrderRejected if refused."""
        if quantity <= 0:
            raise OrderRejected("bad_quantity", "quantity must be positive")
        if any(o.client_order_id == client_order_id for o in self.open_orders.values()):
            raise OrderRejected("duplicate_client_order_id", f"{client_order_id} is already open")
        if type == "LIMIT" and (price is None or price <= 0):
            raise OrderRejected("bad_price", "a LIMIT order needs a positive price")
        if type in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            if stop_price is None or stop_price <= 0:
                raise OrderRejected("bad_price", f"a {type} order needs a positive stop_price")
            if self._triggered(type, side, stop_price, quote.mark):
                raise OrderRejected("would_trigger", "the order would trigger immediately")
        pos = self.positions.get(symbol)
        size = pos.size if pos else 0.0
        if reduce_only and (abs(size) < _EPS or (size > 0) == (side == "BUY")):
            raise OrderRejected("reduce_only_rejected", "reduce-only order would not reduce")
        if not reduce_only:
            ref = price if type == "LIMIT" and price else quote.mark
            lev = self.leverage.get(symbol, DEFAULT_LEVERAGE)
            needed = quantity * ref / lev
            available = self.balance(now).available_balance
            if needed > available + _EPS:
                raise OrderRejected(
                    "insufficient_margin", f"needs {needed:.2f} USDT margin, {available:.2f} free"
                )
        order = Order(
            order_id=f"P{self.next_order}",
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            status="NEW",
            price=price if type == "LIMIT" else None,
            stop_price=stop_price,
            quantity=quantity,
            reduce_only=reduce_only,
            created_at=now,
            updated_at=now,
        )
        self.next_order += 1
        events: list[AccountEvent] = [order]
        if type == "MARKET":
            events += self._fill(order, quote.ask if side == "BUY" else quote.bid, False, now)
        elif (
            type == "LIMIT"
            and price is not None
            and ((side == "BUY" and price >= quote.ask) or (side == "SELL" and price <= quote.bid))
        ):
            events += self._fill(order, quote.ask if side == "BUY" else quote.bid, False, now)
        else:
            self.open_orders[order.order_id] = order
        final = next((e for e in reversed(events) if isinstance(e, Order)), order)
        return final, events

    def find_open(self, order_id: str | None, client_order_id: str | None) -> Order | None:
        if order_id is not None:
            return self.open_orders.get(order_id)
        return next(
            (o for o in self.open_orders.values() if o.client_order_id == client_order_id), None
        )

    def cancel(
        self, now: int, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order by either id; raises OrderRejected if none is open."""
        order = self.find_open(order_id, client_order_id)
        if order is None:
            raise OrderRejected("unknown_order", "no such open order")
        del self.open_orders[order.order_id]
        return order.model_copy(update={"status": "CANCELED", "updated_at": now})

    # ------------------------------------------------------------------ market moves

    def on_price(self, symbol: str, quote: Quote, now: int) -> list[AccountEvent]:
        """React to a new price: liquidate a position past its price, trigger and fill orders."""
        events: list[AccountEvent] = []
        pos = self.positions.get(symbol)
        if pos is not None:
            pos.mark = quote.mark
            liq = liquidation_price(pos.size, pos.entry, pos.leverage)
            if liq is not None and (
                (pos.size > 0 and quote.mark <= liq) or (pos.size < 0 and quote.mark >= liq)
            ):
                events += self._liquidate(symbol, pos, liq, now)
        for order in [o for o in self.open_orders.values() if o.symbol == symbol]:
            if order.order_id not in self.open_orders:
                continue
            if order.type == "LIMIT" and order.price is not None:
                if (order.side == "BUY" and quote.ask <= order.price) or (
                    order.side == "SELL" and quote.bid >= order.price
                ):
                    del self.open_orders[order.order_id]
                    events += self._fill(order, order.price, True, now)
            elif order.stop_price is not None and self._triggered(
                order.type, order.side, order.stop_price, quote.mark
            ):
                del self.open_orders[order.order_id]
                events += self._fill(
                    order, quote.ask if order.side == "BUY" else quote.bid, False, now
                )
        return events

    @staticmethod
    def _triggered(type: OrderType, side: Side, stop: float, mark: float) -> bool:
        if type == "STOP_MARKET":
            return mark >= stop if side == "BUY" else mark <= stop
        if type == "TAKE_PROFIT_MARKET":
            return mark <= stop if side == "BUY" else mark >= stop
        return False

    def _fill(self, order: Order, price: float, maker: bool, now: int) -> list[AccountEvent]:
        pos = self.positions.setdefault(
            order.symbol, _Pos(leverage=self.leverage.get(order.symbol, DEFAULT_LEVERAGE))
        )
        qty = order.quantity
        if order.reduce_only:
            qty = min(qty, abs(pos.size))
            if qty < _EPS:
                expired = order.model_copy(
                    update={
                        "status": "EXPIRED",
                        "reason": "no position to reduce",
                        "updated_at": now,
                    }
                )
                return [expired]
        signed = qty if order.side == "BUY" else -qty
        if abs(pos.size) < _EPS:
            pos.leverage = self.leverage.get(order.symbol, DEFAULT_LEVERAGE)
        pos.size, pos.entry, realized = apply_fill(pos.size, pos.entry, signed, price)
        pos.size = _clean(pos.size)
        pos.mark = price if pos.mark == 0 else pos.mark
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        self.wallet += realized - fee
        trade = Trade(
            trade_id=f"T{self.next_trade}",
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            quantity=qty,
            fee=round(fee, 8),
            realized_pnl=round(realized, 8),
            maker=maker,
            time=now,
        )
        self.next_trade += 1
        filled = order.model_copy(
            update={"status": "FILLED", "filled_qty": qty, "avg_price": price, "updated_at": now}
        )
        return [trade, filled, self.position(order.symbol, now), self.balance(now)]

    def _liquidate(self, symbol: str, pos: _Pos, price: float, now: int) -> list[AccountEvent]:
        order = Order(
            order_id=f"P{self.next_order}",
            client_order_id=f"liq-{self.next_order}",
            symbol=symbol,
            side="SELL" if pos.size > 0 else "BUY",
            type="MARKET",
            status="NEW",
            quantity=abs(pos.size),
            reduce_only=True,
            reason="liquidation",
            created_at=now,
            updated_at=now,
        )
        self.next_order += 1
        return self._fill(order, price, False, now)


def _clean(value: float) -> float:
    """Drop float dust from a quantity."""
    rounded = round(value, 8)
    return 0.0 if abs(rounded) < _EPS else rounded
