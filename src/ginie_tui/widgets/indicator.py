"""The connection indicator: one line, always on screen, saying how current the data is."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.widgets.base import fmt_in, fmt_since

STATE_LOOK: dict[ConnState, tuple[str, str]] = {
    ConnState.LIVE: ("●", "bold green"),
    ConnState.RECONNECTING: ("◌", "bold yellow"),
    ConnState.POLLING: ("◐", "bold yellow"),
    ConnState.OFFLINE: ("○", "bold red"),
    ConnState.STALE: ("◔", "bold red"),
}


def describe_status(status: ConnectionStatus, now: int) -> str:
    """The indicator's text (console markup): state, its numbers, and read-only when not LIVE."""
    mark, style = STATE_LOOK[status.state]
    head = f"[{style}]{mark} {status.state}[/]"
    if status.state is ConnState.LIVE:
        latency = "-" if status.latency_ms is None else f"{status.latency_ms:.0f} ms"
        return f"{head} latency {latency}"
    if status.state is ConnState.STALE:
        body = f"nothing received since {fmt_since(status.last_sync_at, now)}"
    elif status.state is ConnState.RECONNECTING:
        body = f"attempt {status.attempt}, retry {fmt_in(status.next_retry_at, now)}"
    elif status.state is ConnState.POLLING:
        body = (
            f"last sync {fmt_since(status.last_sync_at, now)}, "
            f"next poll {fmt_in(status.next_poll_at, now)}"
        )
    else:
        body = status.detail or "not connected"
    return f"{head} {body} [reverse] READ-ONLY [/]"


class ConnectionIndicator(Static):
    """Shows `describe_status` of the current status and the banner; `status` and `now` are
    bound to the app's (`data_bind`)."""

    DEFAULT_CSS = """
    ConnectionIndicator {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        padding: 0 1;
    }
    """

    status: reactive[ConnectionStatus] = reactive(ConnectionStatus(ConnState.OFFLINE))
    """The connection status last reported by the feed."""
    now: reactive[int] = reactive(0)
    """The time the relative times are shown against (the app's clock)."""
    banner: reactive[str] = reactive("")
    """Shown after the state, for example `paper demo, market x60`."""

    def render(self) -> str:
        text = describe_status(self.status, self.now)
        return f"{text}   [b $accent]{self.banner}[/]" if self.banner else text
