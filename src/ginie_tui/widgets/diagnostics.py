"""Diagnostics and investigate: why the autopilot did or did not trade, and engine health."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ginie_protocol.events import GinieStatus, SystemStatus, Topic
from ginie_tui.widgets.base import Panel, fmt_time

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "down": "bold red"}


class DiagnosticsPanel(Panel):
    DEFAULT_CSS = """
    DiagnosticsPanel Static { height: auto; }
    """
    TITLE = "Diagnostics"
    TOPICS = frozenset({Topic.GINIE_STATUS_UPDATE, Topic.SYSTEM_STATUS_UPDATE})

    def compose(self) -> ComposeResult:
        yield Static(id="diag-body")

    def refresh_all(self) -> None:
        status = self.store.one(GinieStatus)
        system = self.store.one(SystemStatus)
        lines: list[str] = []
        if system is not None:
            engine = system.engine
            style = HEALTH_STYLE[engine.status]
            lines.append(f"Engine [{style}]{engine.status}[/] {engine.detail}")
        if status is None:
            lines.append("[dim]no autopilot diagnostics yet[/]")
        else:
            if status.blocked_reason:
                lines.append(f"[red]Blocked: {status.blocked_reason}[/]")
            if status.rejections_by_reason:
                ranked = sorted(status.rejections_by_reason.items(), key=lambda kv: -kv[1])
                lines.append(
                    "Rejections " + ", ".join(f"{reason} {count}" for reason, count in ranked)
                )
            lines.append("[b]Recent decisions[/]")
            for d in status.recent_decisions[:8]:
                lines.append(f"{fmt_time(d.time)} {d.symbol:<9} {d.action:<7} {d.reason}")
        self.query_one("#diag-body", Static).update("\n".join(lines))
