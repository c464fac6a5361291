"""One user's account as the engine knows it, in typed maps, and the figures derived from it.

The book is the engine's truth for decisions: it changes the moment the exchange reports
something or the domain decides something, before any event about it is published (the
`Outbox` and the `PublishedView` deal with that). It holds:

- the account as the exchange reported it: positions by symbol, orders by id (every open one
  and the newest `KEPT_ORDERS` others), balances by asset;
- the domain's state: chains (`Retained`: live ones and the newest `KEPT_CHAINS` finished),
  the autopilot (with its signals), the circuit breaker, each mode's safety, the P&L book;
- the counters that name new chains and manual orders.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ginie_protocol.events import (
    Balance,
    Chain,
    GinieStatus,
    Mode,
    ModeAllocation,
    ModeSafety,
    Order,
    Pnl,
    Position,
)
from ginie_server.domain import lifecycle, modes
from ginie_server.domain.autopilot import Autopilot, Gates, default_rules
from ginie_server.domain.breaker import Breaker
from ginie_server.domain.pnl import PnlBook
from ginie_server.domain.retention import Retained

KEPT_ORDERS = 300
"""Finished orders kept per user (open ones are all kept)."""
KEPT_TRADES = 300
"""Trades kept in the snapshot per user."""
KEPT_CHAINS = 200
"""Finished chains kept in memory (and in the snapshot) per user; live ones are all kept."""
OPEN_ORDER = frozenset({"NEW", "PARTIALLY_FILLED"})
SETTLEMENT_ASSET = "USDT"
"""The asset whose balance carries the account's unrealized P&L and makes its equity."""

Marks = dict[str, float]
"""The latest mark price of each symbol."""


@dataclass(slots=True)
class AccountBook:
    """Everything the engine holds of one user's account (see the module docstring)."""

    name: str
    autopilot: Autopilot
    breaker: Breaker
    pnl: PnlBook
    safety: dict[str, ModeSafety]
    chains: Retained[Chain] = field(default_factory=lambda: Retained(KEPT_CHAINS))
    positions: dict[str, Position] = field(default_factory=dict)
    orders: OrderedDict[str, Order] = field(default_factory=OrderedDict)
    balances: dict[str, Balance] = field(default_factory=dict)
    next_chain: int = 1
    next_manual: int = 1
    marks_at: int = 0
    """When positions were last revalued at the mark."""

    @classmethod
    def new(cls, name: str, symbols: tuple[str, ...], now: int) -> AccountBook:
        """A fresh account: default rules, breaker and P&L, every mode active."""
        rules = default_rules(symbols)
        book = cls(
            name=name,
            autopilot=Autopilot(rules, day_key=now // 86_400_000),
            breaker=Breaker.new(
                now,
                rules.max_consecutive_losses,
                rules.max_daily_loss,
                rules.max_hourly_loss,
                rules.cooldown_minutes,
            ),
            pnl=PnlBook.new(now),
            safety={mode: modes.new_safety(mode) for mode in modes.MODES},
        )
        book.autopilot.next_scan_at = None
        return book

    # ------------------------------------------------------------------ the exchange's account

    def put_order(self, order: Order) -> None:
        """Keep an order's latest state; finished orders past `KEPT_ORDERS` are forgotten."""
        self.orders[order.order_id] = order
        self.orders.move_to_end(order.order_id)
        if len(self.orders) > KEPT_ORDERS:
            for key, kept in list(self.orders.items()):
                if len(self.orders) <= KEPT_ORDERS:
                    break
                if kept.status not in OPEN_ORDER:
                    del self.orders[key]

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status in OPEN_ORDER]

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.size != 0]

    def last_order_of(self, symbol: str) -> Order | None:
        return next((o for o in reversed(self.orders.values()) if o.symbol == symbol), None)

    # ------------------------------------------------------------------ chains

    def put_chain(self, chain: Chain) -> bool:
        """Keep a chain's new state (a finished one joins the bounded tail); True if it changed."""
        if self.chains.get(chain.chain_id) == chain:
            return False
        self.chains.put(chain.chain_id, chain, done=chain.status not in lifecycle.ACTIVE)
        return True

    def live_chains(self) -> list[Chain]:
        """Chains holding a position: open or partially closed."""
        return [c for c in self.chains.live.values() if c.status in ("open", "partially_closed")]

    def active_chains(self) -> list[Chain]:
        """Chains not finished: pending, open or partially closed."""
        return list(self.chains.live.values())

    def new_chain_id(self) -> str:
        chain_id = f"C{self.next_chain}"
        self.next_chain += 1
        return chain_id

    def new_manual_id(self) -> str:
        client_id = f"m-{self.next_manual}"
        self.next_manual += 1
        return client_id

    # ------------------------------------------------------------------ derived figures

    def unrealized(self) -> float:
        """The account's unrealized P&L: the sum over its positions, each valued at the mark it
        was last published with. The one figure the positions, the balance and P&L all show."""
        return round(sum(p.unrealized_pnl for p in self.open_positions()), 8)

    def equity(self) -> float:
        balance = self.balances.get(SETTLEMENT_ASSET)
        wallet = balance.wallet_balance if balance is not None else 0.0
        return wallet + self.unrealized()

    def pnl_now(self) -> Pnl:
        """P&L as it stands: the running totals with the unrealized P&L and equity of now."""
        return self.pnl.pnl(self.unrealized(), self.equity())

    def put_balance(self, balance: Balance) -> Balance:
        """Keep a balance; the settlement asset's carries the positions' unrealized P&L."""
        if balance.asset == SETTLEMENT_ASSET:
            balance = balance.model_copy(update={"unrealized_pnl": self.unrealized()})
        self.balances[balance.asset] = balance
        return balance

    def balance_behind(self) -> Balance | None:
        """The settlement balance brought to the positions' unrealized P&L, if it lags them."""
        balance = self.balances.get(SETTLEMENT_ASSET)
        if balance is None or balance.unrealized_pnl == self.unrealized():
            return None
        return self.put_balance(balance)

    def allocation(self, mode: Mode) -> ModeAllocation:
        chains = [c for c in self.live_chains() if c.mode == mode]
        leverage = self.autopilot.rules.leverage
        used = sum(c.remaining_qty * (c.entry_price or 0.0) / leverage for c in chains)
        pct = self.autopilot.rules.mode_allocation_pct.get(mode, 0.0)
        return modes.allocation(mode, pct, self.equity(), used, len(chains))

    def allocations(self) -> list[ModeAllocation]:
        return [self.allocation(mode) for mode in modes.MODES]

    def status(self) -> GinieStatus:
        blocked = self.breaker.view.reason if self.breaker.blocks_entries else None
        return self.autopilot.status(len(self.active_chains()), blocked)

    def busy_symbols(self) -> frozenset[str]:
        symbols = [c.symbol for c in self.active_chains()] + [
            p.symbol for p in self.open_positions()
        ]
        return frozenset(symbols)

    def gates(self) -> Gates:
        return Gates(
            breaker_reason=self.breaker.view.reason if self.breaker.blocks_entries else None,
            mode_status={m: s.status for m, s in self.safety.items()},
            busy_symbols=self.busy_symbols(),
            open_positions=len(self.active_chains()),
        )

    def entry_blocker(self, symbol: str, mode: Mode) -> str | None:
        """Why a new chain on `symbol` in `mode` may not open now, or None."""
        if self.breaker.blocks_entries:
            return "circuit_breaker"
        status = self.safety[mode].status
        if status != "active":
            return f"mode_{status}"
        if symbol in self.busy_symbols():
            return "symbol_busy"
        if len(self.active_chains()) >= self.autopilot.rules.max_open_positions:
            return "max_open_positions"
        return None

    # ------------------------------------------------------------------ persistence

    def internal_books(self) -> dict[str, Any]:
        """The state no event carries (autopilot counters, breaker windows, P&L totals)."""
        return {
            "autopilot": self.autopilot.to_dict(),
            "breaker": self.breaker.to_dict(),
            "pnl": self.pnl.to_dict(),
            "next_chain": self.next_chain,
            "next_manual": self.next_manual,
        }

    def load_internal_books(self, data: dict[str, Any]) -> None:
        """Take back what `internal_books` gave."""
        self.autopilot.load_dict(data["autopilot"])
        self.breaker = Breaker.from_dict(data["breaker"])
        self.pnl = PnlBook.from_dict(data["pnl"])
        self.next_chain = data["next_chain"]
        self.next_manual = data["next_manual"]
