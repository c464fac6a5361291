"""The P&L book: realized P&L from fills (net of fees), wins and losses from closed chains.

Realized P&L is counted per fill: the fill's realized P&L minus its fee, so an entry fill
counts its fee as a loss at once. Unrealized P&L is not kept here; the engine passes it in
from the positions' marks. A chain is a win when its net realized P&L is above zero. "Today"
is the UTC day; trade counts count chains entered, by source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ginie_protocol.events import Chain, Performance, PerformanceRow, Pnl, Stats, Trade

DAY_MS = 86_400_000
EQUITY_POINTS = 120
"""Points kept on the equity curve."""


@dataclass(slots=True)
class _Row:
    trades: int = 0
    wins: int = 0
    losses: int = 0
    pnl: float = 0.0

    def add(self, net: float) -> None:
        self.trades += 1
        self.pnl = round(self.pnl + net, 8)
        if net > 0:
            self.wins += 1
        else:
            self.losses += 1

    def to_model(self, key: str) -> PerformanceRow:
        return PerformanceRow(
            key=key,
            trades=self.trades,
            wins=self.wins,
            losses=self.losses,
            win_rate=round(self.wins / self.trades, 4) if self.trades else 0.0,
            pnl=round(self.pnl, 8),
            avg_pnl=round(self.pnl / self.trades, 8) if self.trades else 0.0,
        )


@dataclass(slots=True)
class PnlBook:
    """Running P&L, performance and trade counts of one user."""

    day_key: int
    realized_today: float = 0.0
    realized_total: float = 0.0
    fees_total: float = 0.0
    wins: int = 0
    losses: int = 0
    by_symbol: dict[str, float] = field(default_factory=dict)
    by_mode: dict[str, float] = field(default_factory=dict)
    by_strategy: dict[str, float] = field(default_factory=dict)
    equity_curve: list[float] = field(default_factory=list)
    perf_symbol: dict[str, _Row] = field(default_factory=dict)
    perf_strategy: dict[str, _Row] = field(default_factory=dict)
    total_trades: int = 0
    trades_today: int = 0
    by_source: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls, now: int) -> PnlBook:
        return cls(day_key=now // DAY_MS)

    def roll_day(self, now: int) -> bool:
        """Start a new UTC day if `now` is in one; returns whether it did."""
        if now // DAY_MS == self.day_key:
            return False
        self.day_key = now // DAY_MS
        self.realized_today = 0.0
        self.trades_today = 0
        return True

    def on_fill(self, trade: Trade, mode: str | None, strategy: str | None) -> float:
        """Count a fill; returns its net realized P&L."""
        net = trade.realized_pnl - trade.fee
        self.realized_today = round(self.realized_today + net, 8)
        self.realized_total = round(self.realized_total + net, 8)
        self.fees_total = round(self.fees_total + trade.fee, 8)
        _add(self.by_symbol, trade.symbol, net)
        _add(self.by_mode, mode or "none", net)
        _add(self.by_strategy, strategy or "none", net)
        return net

    def on_chain_opened(self, source: str) -> None:
        self.total_trades += 1
        self.trades_today += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1

    def on_chain_closed(self, chain: Chain) -> None:
        if chain.realized_pnl > 0:
            self.wins += 1
        else:
            self.losses += 1
        self.perf_symbol.setdefault(chain.symbol, _Row()).add(chain.realized_pnl)
        self.perf_strategy.setdefault(chain.strategy, _Row()).add(chain.realized_pnl)

    def record_equity(self, equity: float) -> None:
        self.equity_curve.append(round(equity, 2))
        del self.equity_curve[:-EQUITY_POINTS]

    def pnl(self, unrealized: float, equity: float) -> Pnl:
        closed = self.wins + self.losses
        return Pnl(
            realized_today=self.realized_today,
            realized_total=self.realized_total,
            unrealized=round(unrealized, 8),
            fees_total=self.fees_total,
            equity=round(equity, 8),
            wins=self.wins,
            losses=self.losses,
            win_rate=round(self.wins / closed, 4) if closed else 0.0,
            by_symbol=dict(self.by_symbol),
            by_mode=dict(self.by_mode),
            by_strategy=dict(self.by_strategy),
            equity_curve=list(self.equity_curve),
        )

    def performance(self) -> Performance:
        return Performance(
            by_symbol=[row.to_model(k) for k, row in sorted(self.perf_symbol.items())],
            by_strategy=[row.to_model(k) for k, row in sorted(self.perf_strategy.items())],
        )

    def stats(self, open_chains: int) -> Stats:
        return Stats(
            total_trades=self.total_trades,
            trades_today=self.trades_today,
            by_source=dict(self.by_source),
            open_chains=open_chains,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PnlBook:
        rows = {k: data.pop(k) for k in ("perf_symbol", "perf_strategy")}
        book = cls(**data)
        book.perf_symbol = {k: _Row(**v) for k, v in rows["perf_symbol"].items()}
        book.perf_strategy = {k: _Row(**v) for k, v in rows["perf_strategy"].items()}
        return book


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = round(into.get(key, 0.0) + value, 8)
