"""P&L dashboard: summary cards, an equity sparkline and the breakdown by mode."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from ginie_protocol.events import Pnl, Topic
from ginie_tui.widgets.base import Panel, fmt_num, fmt_signed


class PnlPanel(Panel):
    DEFAULT_CSS = """
    PnlPanel #pnl-cards { height: 4; }
    PnlPanel .card {
        width: 1fr;
        height: 4;
        border: tall $panel-lighten-2;
        padding: 0 1;
        content-align: center middle;
    }
    PnlPanel #pnl-spark { height: 3; margin: 1 0 0 0; }
    PnlPanel #pnl-detail { height: auto; }
    """
    TITLE = "P&L"
    TOPICS = frozenset({Topic.PNL_UPDATE})

    def compose(self) -> ComposeResult:
        with Horizontal(id="pnl-cards"):
            for card in ("equity", "today", "unrealized", "winrate"):
                yield Static(classes="card", id=f"card-{card}")
        yield Sparkline([], id="pnl-spark")
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
        self.query_one("#pnl-spark", Sparkline).data = list(pnl.equity_curve) if pnl else []
        detail = self.query_one("#pnl-detail", Static)
        if pnl is None:
            detail.update("[dim]no P&L yet[/]")
            return
        by_mode = "  ".join(f"{m} {fmt_signed(v)}" for m, v in pnl.by_mode.items())
        detail.update(
            f"Realized total {fmt_signed(pnl.realized_total)}   fees {fmt_num(pnl.fees_total)}\n"
            f"By mode  {by_mode or '-'}"
        )
