"""One Binance account as last reported, each change of it told to the listener once.

An order is reported when it differs from the cached one and is not older news (`is_stale`), a
fill once per trade id, a position or balance when it changed. The user stream's messages are
counted, so that a position or balance the stream updated while a REST read was under way keeps
the stream's value. Memory stays bounded: the newest `KEPT_TERMINAL_ORDERS` finished orders and
`RECENT_TRADES` trade ids are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

from ginie_protocol.events import Balance, Order, Position, Trade
from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import ExchangeListener

RECENT_TRADES = 2000
KEPT_TERMINAL_ORDERS = 1000


class AccountCache:
    """The orders, fills, positions, balances and leverage of `owner`'s account."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.listener: ExchangeListener | None = None
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._positions: dict[str, Position] = {}
        self._balances: dict[str, Balance] = {}
        self._leverage: dict[str, int] = {}
        self._last_trade_id: dict[str, int] = {}
        self._recent_trades: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._stream_seq = 0
        self._touched: dict[str, int] = {}
        """The stream message that last set each position / balance (`position:SYM`, ...)."""

    # ------------------------------------------------------------------ reading

    @property
    def orders(self) -> Mapping[str, Order]:
        """Every cached order by id, oldest first."""
        return self._orders

    @property
    def positions(self) -> Mapping[str, Position]:
        """The positions by symbol, flat ones included."""
        return self._positions

    @property
    def balances(self) -> Mapping[str, Balance]:
        return self._balances

    @property
    def leverage(self) -> Mapping[str, int]:
        return self._leverage

    def open_orders(self) -> list[Order]:
        return [o for o in self._orders.values() if o.status not in mapping.TERMINAL_STATUSES]

    def open_positions(self) -> list[Position]:
        return [p for p in self._positions.values() if p.size != 0]

    def order_with_client_id(self, client_order_id: str) -> Order | None:
        return next(
            (o for o in self._orders.values() if o.client_order_id == client_order_id), None
        )

    def order_symbols(self) -> Iterator[str]:
        return (o.symbol for o in self._orders.values())

    def last_trade_id(self, symbol: str) -> int | None:
        """The highest trade id of `symbol` seen, None before the first."""
        return self._last_trade_id.get(symbol)

    def knows_trade(self, symbol: str, trade_id: int) -> bool:
        return (symbol, trade_id) in self._recent_trades

    # ------------------------------------------------------------------ changing and reporting

    def apply_order(self, order: Order) -> None:
        cached = self._orders.get(order.order_id)
        if mapping.is_stale(cached, order) or cached == order:
            return
        self._orders[order.order_id] = order
        self._orders.move_to_end(order.order_id)
        self._prune_orders()
        if self.listener is not None:
            self.listener.on_order(self.owner, order)

    def _prune_orders(self) -> None:
        terminal = [k for k, o in self._orders.items() if o.status in mapping.TERMINAL_STATUSES]
        for key in terminal[: max(0, len(terminal) - KEPT_TERMINAL_ORDERS)]:
            del self._orders[key]

    def apply_trade(self, trade: Trade) -> None:
        key = (trade.symbol, mapping.trade_number(trade))
        if key in self._recent_trades:
            return
        self.remember_trade(*key)
        if self.listener is not None:
            self.listener.on_trade(self.owner, trade)

    def remember_trade(self, symbol: str, trade_id: int) -> None:
        """Count a fill as seen without reporting it."""
        self._recent_trades[(symbol, trade_id)] = None
        while len(self._recent_trades) > RECENT_TRADES:
            self._recent_trades.popitem(last=False)
        self._last_trade_id[symbol] = max(self._last_trade_id.get(symbol, trade_id), trade_id)

    def apply_position(self, position: Position) -> None:
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
        if self.listener is not None:
            self.listener.on_position(self.owner, position)

    def apply_balance(self, balance: Balance) -> None:
        cached = self._balances.get(balance.asset)
        if (
            cached is not None
            and cached.model_copy(update={"updated_at": balance.updated_at}) == balance
        ):
            return
        self._balances[balance.asset] = balance
        if self.listener is not None:
            self.listener.on_balance(self.owner, balance)

    def leverage_changed(self, symbol: str, leverage: int, position: Position | None) -> bool:
        """Keep a new leverage and report an open position at it; True when the positions
        want a refresh, for the liquidation price Binance computes. A flat position is only
        kept: reporting it could read as a close to a listener that has not yet seen the fill
        that opened it."""
        self._leverage[symbol] = leverage
        if position is None:
            return False
        if position.size == 0:
            self._positions[symbol] = position
            return False
        self.apply_position(position)
        return True

    # ------------------------------------------------------------------ stream against REST

    @property
    def stream_seq(self) -> int:
        """How many user stream messages arrived; read before a REST read goes out."""
        return self._stream_seq

    def count_stream_message(self) -> None:
        self._stream_seq += 1

    def set_by_stream(self, key: str) -> None:
        """The current stream message set `key` (`position:SYM`, `balance:ASSET`)."""
        self._touched[key] = self._stream_seq

    def set_by_stream_since(self, key: str, seq: int) -> bool:
        """Whether a stream message after the `seq`-th set `key`: a REST read sent at `seq`
        then holds older news for it."""
        return self._touched.get(key, 0) > seq
