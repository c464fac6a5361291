"""Connection details: the server, the state machine's numbers, the resume point, problems."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ginie_tui.connection import ConnectionStatus
from ginie_tui.widgets.base import Panel, fmt_in, fmt_since


class ConnectionPanel(Panel):
    DEFAULT_CSS = """
    ConnectionPanel Static { height: auto; }
    """
    TITLE = "Connection"

    def __init__(self, *args: object, server: str, poll_interval_s: float, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.server = server
        self.poll_interval_s = poll_interval_s
        self.problems: list[str] = []
        self._status: ConnectionStatus | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="conn-body")

    def show(self, status: ConnectionStatus) -> None:
        """Hold `status` for the next render (the app renders the panel while it is shown)."""
        self._status = status

    def add_problem(self, text: str) -> None:
        """Keep the last 20 problems for the next render."""
        self.problems.append(text)
        del self.problems[:-20]

    def refresh_all(self) -> None:
        status = self._status
        now = self.clock.now_ms()
        lines = [f"Server {self.server or '-'}"]
        if status is not None:
            latency = "-" if status.latency_ms is None else f"{status.latency_ms:.1f} ms"
            lines += [
                f"State {status.state}   latency {latency}",
                f"Retry attempt {status.attempt}   next {fmt_in(status.next_retry_at, now)}",
                f"Last sync {fmt_since(status.last_sync_at, now)}"
                f"   next poll {fmt_in(status.next_poll_at, now)}"
                f" (every {self.poll_interval_s:g} s when not LIVE)",
            ]
            if status.detail:
                lines.append(f"[yellow]{status.detail}[/]")
        lines.append(f"Resume point epoch {self.store.epoch or '-'} seq {self.store.seq}")
        lines.append(f"Problems {len(self.problems)}   items left out {self.store.rejected}")
        if self.problems:
            lines.append(f"[dim]last: {self.problems[-1]}[/]")
        self.query_one("#conn-body", Static).update("\n".join(lines))
