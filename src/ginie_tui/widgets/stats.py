"""Trade source stats: how many trades the autopilot and the user made."""

from __future__ import annotations

from ginie_protocol.events import Stats
from ginie_tui.widgets.base import ModelPanel


class StatsPanel(ModelPanel[Stats]):
    TITLE = "Trade sources"
    MODEL = Stats
    EMPTY = "no trade stats yet"
    BODY_ID = "stats-body"

    def describe(self, stats: Stats) -> str:
        total = max(1, sum(stats.by_source.values()))
        lines = [
            f"Trades {stats.total_trades}   today {stats.trades_today}"
            f"   open chains {stats.open_chains}"
        ]
        for source, count in sorted(stats.by_source.items()):
            share = count / total
            lines.append(f"{source:<10} {'█' * round(share * 20):<20} {count} ({share:.0%})")
        return "\n".join(lines)
