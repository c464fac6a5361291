"""Trade source stats: how many trades the autopilot and the user made."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ginie_protocol.events import Stats, Topic
from ginie_tui.widgets.base import Panel


class StatsPanel(Panel):
    DEFAULT_CSS = """
    StatsPanel Static { height: auto; }
    """
    TITLE = "Trade sources"
    TOPICS = frozenset({Topic.STATS_UPDATE})

    def compose(self) -> ComposeResult:
        yield Static(id="stats-body")

    def refresh_all(self) -> None:
        stats: Stats | None = self.store.singleton(Topic.STATS_UPDATE)
        body = self.query_one("#stats-body", Static)
        if stats is None:
            body.update("[dim]no trade stats yet[/]")
            return
        total = max(1, sum(stats.by_source.values()))
        lines = [
            f"Trades {stats.total_trades}   today {stats.trades_today}"
            f"   open chains {stats.open_chains}"
        ]
        for source, count in sorted(stats.by_source.items()):
            share = count / total
            lines.append(f"{source:<10} {'█' * round(share * 20):<20} {count} ({share:.0%})")
        body.update("\n".join(lines))
