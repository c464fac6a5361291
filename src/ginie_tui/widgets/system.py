"""System: exchange API health (latency, request weight) and the health of each component."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ginie_protocol.events import ApiHealth, SystemStatus, Topic
from ginie_tui.widgets.base import Panel, fmt_ago, fmt_num
from ginie_tui.widgets.breaker import gauge

HEALTH_STYLE = {"ok": "bold green", "degraded": "bold yellow", "down": "bold red"}


class SystemPanel(Panel):
    DEFAULT_CSS = """
    SystemPanel Static { height: auto; }
    """
    TITLE = "API health and system"
    TOPICS = frozenset({Topic.HEALTH_UPDATE, Topic.SYSTEM_STATUS_UPDATE})

    def compose(self) -> ComposeResult:
        yield Static(id="system-body")

    def refresh_all(self) -> None:
        health = self.store.one(ApiHealth)
        system = self.store.one(SystemStatus)
        now = self.clock.now_ms()
        lines: list[str] = []
        if health is None:
            lines.append("[dim]no API health yet[/]")
        else:
            lines.append(
                f"API {health.exchange} [{HEALTH_STYLE[health.status]}]{health.status}[/]"
                f"  latency {fmt_num(health.latency_ms, 1)} ms"
            )
            lines.append(
                f"Weight {gauge(health.weight_used, health.weight_limit)}"
                f" {health.weight_used}/{health.weight_limit}"
            )
            if health.last_error:
                lines.append(f"[red]Last error: {health.last_error}[/]")
        if system is not None:
            for name in ("exchange", "database", "engine"):
                part = getattr(system, name)
                lines.append(
                    f"{name.capitalize():<9}[{HEALTH_STYLE[part.status]}]{part.status:<9}[/]"
                    f"{part.detail} ({fmt_ago(part.since, now)})"
                )
            lines.append(f"Server {system.version}, up {fmt_ago(system.started_at, now)}")
        self.query_one("#system-body", Static).update("\n".join(lines))
