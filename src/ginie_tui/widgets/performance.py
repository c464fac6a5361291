"""Performance of closed chains, per symbol and per strategy, as bars of their P&L.

Each row: the symbol or strategy, its net P&L, a bar of that P&L (green for a gain, red for a
loss; every bar on one scale, the largest P&L shown), its win rate and wins/losses. Rows are
ordered by P&L, best first, symbols above strategies; the list scrolls when it is long."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget

from ginie_protocol.events import Performance, PerformanceRow, Topic
from ginie_tui.widgets.bars import bar
from ginie_tui.widgets.base import Panel

LABEL_COLS = 12
FIXED_COLS = LABEL_COLS + 10 + 6 + 8
"""Columns that are not the bar: label, P&L, win rate, wins/losses (with their gaps)."""


class PerformanceBars(Widget):
    """The bars of one Performance (None: nothing yet)."""

    DEFAULT_CSS = """
    PerformanceBars { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.performance: Performance | None = None

    def show(self, performance: Performance | None) -> None:
        if performance != self.performance:
            self.performance = performance
            self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        perf = self.performance
        if perf is None or not (perf.by_symbol or perf.by_strategy):
            text.append("no closed chains yet", style="dim")
            return text
        rows = [*perf.by_symbol, *perf.by_strategy]
        scale = max(abs(r.pnl) for r in rows)
        cols = max(4, self.size.width - FIXED_COLS)
        for title, group in (("By symbol", perf.by_symbol), ("By strategy", perf.by_strategy)):
            if not group:
                continue
            text.append(f"{title}\n", style="bold")
            for row in sorted(group, key=lambda r: (-r.pnl, r.key)):
                self._row(text, row, scale, cols)
        text.rstrip()
        return text

    @staticmethod
    def _row(text: Text, row: PerformanceRow, scale: float, cols: int) -> None:
        colour = "green" if row.pnl > 0 else "red" if row.pnl < 0 else "default"
        text.append(f"{row.key[:LABEL_COLS]:<{LABEL_COLS}}")
        text.append(f"{row.pnl:>+10,.2f} ", colour)
        text.append(bar(row.pnl, scale, cols), colour)
        text.append(f" {row.win_rate:>4.0%} {row.wins:>3}/{row.losses:<3}\n")


class PerformancePanel(Panel):
    TITLE = "Performance"
    TOPICS = frozenset({Topic.PERFORMANCE_UPDATE})

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield PerformanceBars()

    def refresh_all(self) -> None:
        self.query_one(PerformanceBars).show(self.store.singleton(Topic.PERFORMANCE_UPDATE))
