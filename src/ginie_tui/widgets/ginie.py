"""Ginie status and controls: autopilot state, scan progress, the last decision, start/stop."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from ginie_protocol.events import GinieStatus
from ginie_tui.widgets.base import CommandRequested, ModelPanel, fmt_in, fmt_time

STATE_STYLE = {"running": "bold green", "stopped": "bold yellow", "blocked": "bold red"}


class GiniePanel(ModelPanel[GinieStatus]):
    DEFAULT_CSS = """
    GiniePanel Button { margin-right: 2; }
    """
    TITLE = "Ginie autopilot"
    MODEL = GinieStatus
    EMPTY = "no autopilot status yet"
    BODY_ID = "ginie-body"

    def compose(self) -> ComposeResult:
        yield from super().compose()
        with Horizontal():
            yield Button("Start", id="ginie-start", variant="success", compact=True)
            yield Button("Stop", id="ginie-stop", variant="warning", compact=True)

    def describe(self, status: GinieStatus) -> str:
        now = self.clock.now_ms()
        style = STATE_STYLE[status.state]
        lines = [
            f"State  [{style}]{status.state.upper()}[/]"
            + (f"  [red]{status.blocked_reason}[/]" if status.blocked_reason else ""),
            f"Scans  {status.scans}   last {fmt_time(status.last_scan_at)}"
            f"   next {fmt_in(status.next_scan_at, now)}",
            f"Signals today {status.signals_today}   open positions {status.open_positions}",
            f"Watching {', '.join(status.symbols) or '-'}",
        ]
        if status.last_decision is not None:
            d = status.last_decision
            lines.append(f"Last   {d.symbol} {d.action}: {d.reason}")
        return "\n".join(lines)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        name = "ginie.start" if event.button.id == "ginie-start" else "ginie.stop"
        self.post_message(CommandRequested(name))
