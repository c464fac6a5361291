"""P&L dashboard: summary cards, the equity curve, realized P&L per day, the breakdown by mode.

The equity curve pairs the server's curve (a point per closed chain) with the close times of
the chains held, and ends with the equity now; the days are summed from the trades held, today
from the server's figure (`ginie_tui.charts`). Chains and trades therefore redraw it too."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ginie_protocol.events import Pnl, Topic
from ginie_tui.charts import daily_realized, equity_points
from ginie_tui.widgets.base import Panel, fmt_num, fmt_signed
from ginie_tui.widgets.equity import DailyFigure, DailyPnlChart, EquityChart, EquityFigure


class PnlPanel(Panel):
    DEFAULT_CSS = """
    PnlPanel #pnl-cards { height: 2; }
    PnlPanel .card { width: 1fr; height: 2; padding: 0 1; margin: 0 1 0 0; background: $panel; }
    PnlPanel #pnl-charts { height: 1fr; }
    PnlPanel #pnl-equity { width: 3fr; }
    PnlPanel #pnl-daily { width: 2fr; }
    PnlPanel #pnl-detail { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    TITLE = "P&L"
    TOPICS = frozenset({Topic.PNL_UPDATE, Topic.CHAIN_UPDATE, Topic.TRADE_UPDATE})

    def compose(self) -> ComposeResult:
        with Horizontal(id="pnl-cards"):
            for card in ("equity", "today", "unrealized", "winrate"):
                yield Static(classes="card", id=f"card-{card}")
        with Horizontal(id="pnl-charts"):
            yield EquityChart(id="pnl-equity")
            yield DailyPnlChart(id="pnl-daily")
        yield Static(id="pnl-detail")

    def refresh_all(self) -> None:
        pnl: Pnl | None = self.store.singleton(Topic.PNL_UPDATE)
        cards = {
            "equity": ("Equity", "-"),
            "today": ("Realized today", "-"),
            "unrealized": ("Unrealized", "-"),
            "winrate": ("Win rate", "-"),
        }
        if pnl is not None:
            cards = {
                "equity": ("Equity", f"[b]{fmt_num(pnl.equity)}[/]"),
                "today": ("Realized today", fmt_signed(pnl.realized_today)),
                "unrealized": ("Unrealized", fmt_signed(pnl.unrealized)),
                "winrate": ("Win rate", f"{pnl.win_rate:.0%} ({pnl.wins}W {pnl.losses}L)"),
            }
        for card, (label, value) in cards.items():
            self.query_one(f"#card-{card}", Static).update(f"[dim]{label}[/]\n{value}")
        now = self.clock.now_ms()
        chains = self.store.items(Topic.CHAIN_UPDATE)
        trades = self.store.items(Topic.TRADE_UPDATE)
        points = equity_points(pnl, chains, now) if pnl is not None else []
        self.query_one(EquityChart).show(EquityFigure(tuple(points)))
        days = daily_realized(trades, pnl, now) if pnl is not None or trades else []
        self.query_one(DailyPnlChart).show(DailyFigure(tuple(days)))
        detail = self.query_one("#pnl-detail", Static)
        if pnl is None:
            detail.update("[dim]no P&L yet[/]")
            return
        by_mode = "  ".join(f"{m} {fmt_signed(v)}" for m, v in pnl.by_mode.items())
        detail.update(
            f"Realized total {fmt_signed(pnl.realized_total)}  fees {fmt_num(pnl.fees_total)}"
            f"  by mode {by_mode or '-'}"
        )
