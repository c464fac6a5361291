"""Ginie status and controls: autopilot state, scan progress, the last decision, start/stop."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from ginie_protocol.events import GinieStatus, Topic
from ginie_tui.widgets.base import CommandRequested, Panel, fmt_in, fmt_time

STATE_STYLE = {"running": "bold green", "stopped": "bold yellow", "blocked": "bold red"}


class GiniePanel(Panel):
    DEFAULT_CSS = """
    GiniePanel #ginie-body { height: auto; }
    GiniePanel Horizontal { height: auto; }
    GiniePanel Button { margin-right: 2; }
    """
    TITLE = "Ginie autopilot"
    TOPICS = frozenset({Topic.GINIE_STATUS_UPDATE})

    def compose(self) -> ComposeResult:
        yield Static(id="ginie-body")
        with Horizontal():
            yield Button("Start", id="ginie-start", variant="success", compact=True)
            yield Button("Stop", id="ginie-stop", variant="warning", compact=True)

    def refresh_all(self) -> None:
        status: GinieStatus | None = self.store.singleton(Topic.GINIE_STATUS_UPDATE)
        body = self.query_one("#ginie-body", Static)
        if status is None:
            body.update("[dim]no autopilot status yet[/]")
            return
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
        body.update("\n".join(lines))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        name = "ginie.start" if event.button.id == "ginie-start" else "ginie.stop"
        self.post_message(CommandRequested(name))
