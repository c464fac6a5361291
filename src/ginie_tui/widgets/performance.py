"""Performance of closed chains, per symbol and per strategy."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import Performance, PerformanceRow, Topic
from ginie_tui.widgets.base import KeyedTable, Panel, Ranked, fmt_signed

COLUMNS = (
    ("key", "Symbol/strategy", 15),
    ("pnl", "P&L", 8),
    ("rate", "Win", 4),
    ("wl", "W/L", 5),
    ("trades", "N", 3),
    ("avg", "Avg", 7),
)


class PerformancePanel(Panel):
    TITLE = "Performance"
    TOPICS = frozenset({Topic.PERFORMANCE_UPDATE})

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, max_rows=200, newest_first=False)

    def refresh_all(self) -> None:
        perf = self.store.one(Performance)
        rows: list[tuple[str, list[Any]]] = []
        if perf is not None:
            rows += [(f"sym:{r.key}", self._cells(r, 0)) for r in perf.by_symbol]
            rows += [(f"strat:{r.key}", self._cells(r, 1)) for r in perf.by_strategy]
        self.query_one(KeyedTable).replace_all(rows)

    @staticmethod
    def _cells(row: PerformanceRow, group: int) -> list[Any]:
        label = row.key if group == 0 else f"[i]{row.key}[/]"
        return [
            Ranked(label, (group, -row.pnl, row.key)),
            fmt_signed(row.pnl),
            f"{row.win_rate:.0%}",
            f"{row.wins}/{row.losses}",
            str(row.trades),
            fmt_signed(row.avg_pnl),
        ]
