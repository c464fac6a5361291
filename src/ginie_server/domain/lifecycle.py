"""The trade lifecycle: an order chain (entry, take-profits, stop-loss) and its state machine.

Client order ids tie a chain together: `g-<chain>-E` is the entry, `g-<chain>-TP1` and
`g-<chain>-TP2` the take-profits, `g-<chain>-SL` the stop-loss and `g-<chain>-X` a market close
asked for by the user or by the chain itself.

States: `pending` (entry sent) -> `open` (entry filled, exits placed) -> `partially_closed`
(a take-profit filled, some quantity left) -> `closed`. An entry that is refused or expires
makes the chain `failed`; one that is cancelled makes it `cancelled`.

One-cancels-other: when an exit closes the chain, the other exits are cancelled. An exit the
exchange refuses (for example a stop that would trigger at once) leaves the position without
protection, so the chain closes it at market.

Each function takes a chain and what happened and returns a `Transition`: the new chain, the
steps to record (one row of `trade_lifecycle_events` each) and the orders to place or cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ginie_protocol.events import Chain, Mode, Order, OrderType, Side, Trade
from ginie_server.domain.market import floor_to

Role = Literal["E", "TP1", "TP2", "SL", "X"]
_ROLES: frozenset[str] = frozenset({"E", "TP1", "TP2", "SL", "X"})
_EXITS: tuple[Role, ...] = ("TP1", "TP2", "SL")
_EPS = 1e-9
Details = dict[str, str | float | int | bool | None]
ACTIVE: frozenset[str] = frozenset({"pending", "open", "partially_closed"})
"""Statuses of a chain that is not over yet; the others (closed, cancelled, failed) are final."""


def client_id(chain_id: str, role: Role) -> str:
    """The client order id of one role in a chain."""
    return f"g-{chain_id}-{role}"


def parse_client_id(client_order_id: str) -> tuple[str, Role] | None:
    """The chain id and role a client order id encodes, or None for a foreign order."""
    if not client_order_id.startswith("g-"):
        return None
    chain_id, _, role = client_order_id[2:].rpartition("-")
    if not chain_id or role not in _ROLES:
        return None
    return chain_id, role  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """An order the chain wants placed."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    stop_price: float | None = None
    reduce_only: bool = False
    price: float | None = None
    """The limit price of a LIMIT order."""


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """An order the chain wants cancelled, if it is still open."""

    client_order_id: str
    symbol: str


Action = PlaceOrder | CancelOrder


@dataclass(frozen=True, slots=True)
class Step:
    """One step in a chain's life, to be written as a lifecycle row."""

    step: str
    message: str
    details: Details = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one input did to a chain."""

    chain: Chain
    steps: list[Step] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """A trade to open: an entry (at market, or a limit) with up to two take-profits and a
    stop-loss; a manual trade may have neither."""

    symbol: str
    direction: Literal["LONG", "SHORT"]
    mode: Mode
    source: Literal["autopilot", "manual"]
    strategy: str
    signal_id: str | None
    quantity: float
    take_profit: float | None
    stop_loss: float | None
    reference_price: float
    entry_type: Literal["MARKET", "LIMIT"] = "MARKET"
    entry_price: float | None = None
    """The limit price of a LIMIT entry."""


def take_profit_quantities(total: float, levels: int, qty_step: float) -> list[float]:
    """How `total` is split over the take-profits: half at the first of two levels (rounded
    down to the step), the rest at the last; all at one level when it cannot be split."""
    half = floor_to(total / 2, qty_step)
    if levels < 2 or half <= 0 or total - half <= _EPS:
        return [total]
    return [half, round(total - half, 8)]


def take_profit_prices(plan: Plan, qty_step: float) -> list[float]:
    """The take-profit levels: midway to the target and the target, or the target alone
    (none without a target)."""
    if plan.take_profit is None:
        return []
    if len(take_profit_quantities(plan.quantity, 2, qty_step)) == 1:
        return [plan.take_profit]
    return [plan.reference_price + (plan.take_profit - plan.reference_price) / 2, plan.take_profit]


def open_chain(chain_id: str, plan: Plan, take_profits: list[float], now: int) -> Transition:
    """A new pending chain and its market entry; `take_profits` are the exit prices."""
    entry_side: Side = "BUY" if plan.direction == "LONG" else "SELL"
    tp_roles: list[Role] = ["TP1", "TP2"][: len(take_profits)]  # type: ignore[assignment]
    chain = Chain(
        chain_id=chain_id,
        symbol=plan.symbol,
        direction=plan.direction,
        mode=plan.mode,
        source=plan.source,
        strategy=plan.strategy,
        signal_id=plan.signal_id,
        status="pending",
        entry_client_order_id=client_id(chain_id, "E"),
        take_profit_client_order_ids=[client_id(chain_id, r) for r in tp_roles],
        stop_loss_client_order_id=client_id(chain_id, "SL") if plan.stop_loss else None,
        quantity=plan.quantity,
        remaining_qty=0.0,
        take_profit_prices=list(take_profits),
        stop_loss_price=plan.stop_loss,
        opened_at=now,
    )
    entry = PlaceOrder(
        chain.entry_client_order_id,
        plan.symbol,
        entry_side,
        plan.entry_type,
        plan.quantity,
        price=plan.entry_price,
    )
    step = Step(
        "created",
        f"{plan.direction} {plan.quantity} {plan.symbol} ({plan.mode}, {plan.source})",
        {
            "quantity": plan.quantity,
            "take_profit": plan.take_profit,
            "stop_loss": plan.stop_loss,
            "signal_id": plan.signal_id,
        },
    )
    return Transition(chain, [step], [entry], changed=True)


def _exit_side(chain: Chain) -> Side:
    return "SELL" if chain.direction == "LONG" else "BUY"


def _live(chain: Chain) -> bool:
    return chain.status in ("open", "partially_closed")


def _exit_orders(chain: Chain, take_profit_qtys: list[float]) -> list[Action]:
    side = _exit_side(chain)
    levels = list(zip(chain.take_profit_client_order_ids, chain.take_profit_prices, strict=True))
    levels = levels[len(levels) - len(take_profit_qtys) :]
    actions: list[Action] = [
        PlaceOrder(cid, chain.symbol, side, "TAKE_PROFIT_MARKET", qty, price, reduce_only=True)
        for (cid, price), qty in zip(levels, take_profit_qtys, strict=True)
    ]
    if chain.stop_loss_client_order_id and chain.stop_loss_price is not None:
        actions.append(
            PlaceOrder(
                chain.stop_loss_client_order_id,
                chain.symbol,
                side,
                "STOP_MARKET",
                chain.remaining_qty,
                chain.stop_loss_price,
                reduce_only=True,
            )
        )
    return actions


def _cancel_exits(chain: Chain, keep: str | None = None) -> list[Action]:
    ids = [*chain.take_profit_client_order_ids, chain.stop_loss_client_order_id]
    return [CancelOrder(cid, chain.symbol) for cid in ids if cid and cid != keep]


def _close(
    chain: Chain, reason: str, now: int, keep: str | None
) -> tuple[Chain, Step, list[Action]]:
    closed = chain.model_copy(
        update={"status": "closed", "remaining_qty": 0.0, "close_reason": reason, "closed_at": now}
    )
    step = Step(
        "closed",
        f"chain closed by {reason.replace('_', ' ')}",
        {"realized_pnl": closed.realized_pnl},
    )
    return closed, step, _cancel_exits(chain, keep)


def on_trade(chain: Chain, trade: Trade) -> Chain:
    """Add a fill's realized P&L, net of its fee, to the chain."""
    return chain.model_copy(
        update={"realized_pnl": round(chain.realized_pnl + trade.realized_pnl - trade.fee, 8)}
    )


def on_order(chain: Chain, order: Order, qty_step: float, now: int) -> Transition:
    """Advance the chain on an update of one of its orders; `qty_step` is the symbol's."""
    parsed = parse_client_id(order.client_order_id)
    if parsed is None:
        return Transition(chain)
    role = parsed[1]
    if role == "E":
        return _on_entry(chain, order, qty_step, now)
    if order.status == "NEW":
        name = {"TP1": "take_profit", "TP2": "take_profit", "SL": "stop_loss", "X": "close"}[role]
        price = f" at {order.stop_price}" if order.stop_price else ""
        return Transition(
            chain,
            [
                Step(
                    f"{name}_placed",
                    f"{role} {order.quantity}{price}",
                    {"client_order_id": order.client_order_id},
                )
            ],
        )
    if order.status == "FILLED":
        return _on_exit_filled(chain, order, role, now)
    if order.status in ("CANCELED", "EXPIRED"):
        step = Step(
            "order_cancelled" if order.status == "CANCELED" else "order_expired",
            f"{role} {order.status.lower()}",
            {"client_order_id": order.client_order_id},
        )
        return Transition(chain, [step])
    return Transition(chain)


def _on_entry(chain: Chain, order: Order, qty_step: float, now: int) -> Transition:
    details: Details = {"client_order_id": order.client_order_id}
    if order.status == "NEW" and chain.status == "pending":
        return Transition(
            chain, [Step("entry_placed", f"entry {order.side} {order.quantity}", details)]
        )
    if order.status in ("FILLED", "PARTIALLY_FILLED") and chain.status == "pending":
        filled = order.filled_qty
        opened = chain.model_copy(
            update={"status": "open", "entry_price": order.avg_price, "remaining_qty": filled}
        )
        levels = len(chain.take_profit_prices)
        qtys = take_profit_quantities(filled, levels, qty_step) if levels else []
        step = Step(
            "entry_filled",
            f"entry filled {filled} at {order.avg_price}",
            {**details, "price": order.avg_price, "quantity": filled},
        )
        return Transition(opened, [step], _exit_orders(opened, qtys), changed=True)
    if order.status in ("CANCELED", "EXPIRED", "REJECTED") and chain.status == "pending":
        status = "cancelled" if order.status == "CANCELED" else "failed"
        reason = order.reason or f"entry {order.status.lower()}"
        ended = chain.model_copy(
            update={"status": status, "close_reason": reason, "closed_at": now}
        )
        return Transition(ended, [Step(status, reason, details)], changed=True)
    return Transition(chain)


def _on_exit_filled(chain: Chain, order: Order, role: Role, now: int) -> Transition:
    if not _live(chain):
        return Transition(chain)
    remaining = round(max(0.0, chain.remaining_qty - order.filled_qty), 8)
    filled_step = {
        "TP1": "take_profit_filled",
        "TP2": "take_profit_filled",
        "SL": "stop_loss_filled",
        "X": "close_filled",
    }[role]
    steps = [
        Step(
            filled_step,
            f"{role} filled {order.filled_qty} at {order.avg_price}",
            {
                "client_order_id": order.client_order_id,
                "price": order.avg_price,
                "quantity": order.filled_qty,
            },
        )
    ]
    if remaining > _EPS:
        reduced = chain.model_copy(
            update={"status": "partially_closed", "remaining_qty": remaining}
        )
        return Transition(reduced, steps, changed=True)
    reason = {"TP1": "take_profit", "TP2": "take_profit", "SL": "stop_loss"}.get(
        role, chain.close_reason or "manual_close"
    )
    closed, step, cancels = _close(chain, reason, now, order.client_order_id)
    return Transition(closed, [*steps, step], cancels, changed=True)


def on_rejected(chain: Chain, role: Role, code: str, message: str, now: int) -> Transition:
    """An order of the chain was refused when placed."""
    details: Details = {"client_order_id": client_id(chain.chain_id, role), "code": code}
    if role == "E":
        if chain.status != "pending":
            return Transition(chain)
        failed = chain.model_copy(
            update={
                "status": "failed",
                "close_reason": f"entry rejected: {message}",
                "closed_at": now,
            }
        )
        return Transition(
            failed, [Step("failed", f"entry rejected: {message}", details)], changed=True
        )
    step = Step("order_rejected", f"{role} rejected: {message}", details)
    if role == "X" or not _live(chain):
        return Transition(chain, [step])
    closing = request_close(chain, "protection_rejected")
    return Transition(closing.chain, [step, *closing.steps], closing.actions, closing.changed)


def request_close(chain: Chain, reason: str) -> Transition:
    """Close what is left of the chain at market (the user's or the chain's own decision)."""
    if not _live(chain) or chain.remaining_qty <= _EPS:
        return Transition(chain)
    marked = chain.model_copy(update={"close_reason": reason})
    close = PlaceOrder(
        client_id(chain.chain_id, "X"),
        chain.symbol,
        _exit_side(chain),
        "MARKET",
        chain.remaining_qty,
        reduce_only=True,
    )
    step = Step(
        "close_requested", f"close {chain.remaining_qty} at market: {reason}", {"reason": reason}
    )
    return Transition(marked, [step], [close], changed=marked != chain)


def on_flat(chain: Chain, reason: str, now: int) -> Transition:
    """The position went flat without the chain's own exits (liquidation, or closed elsewhere)."""
    if not _live(chain):
        return Transition(chain)
    closed, step, cancels = _close(chain, reason, now, None)
    return Transition(closed, [step], cancels, changed=True)


def restore_exits(chain: Chain, qty_step: float, done_ids: set[str]) -> list[Action]:
    """Exits for what is left of a live chain that has none open (after a restart): the
    take-profits not already filled, and the stop-loss."""
    if not _live(chain) or chain.remaining_qty <= _EPS:
        return []
    levels = [
        (cid, price)
        for cid, price in zip(
            chain.take_profit_client_order_ids, chain.take_profit_prices, strict=True
        )
        if cid not in done_ids
    ]
    qtys = take_profit_quantities(chain.remaining_qty, len(levels), qty_step) if levels else []
    rest = chain.model_copy(
        update={
            "take_profit_client_order_ids": [cid for cid, _ in levels],
            "take_profit_prices": [price for _, price in levels],
        }
    )
    return _exit_orders(rest, qtys)
