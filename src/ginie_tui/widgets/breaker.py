"""Circuit breaker: losses against their limits, trip reason, cool-down, reset."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from ginie_protocol.events import CircuitBreaker
from ginie_tui.widgets.base import CommandRequested, ModelPanel, fmt_in, fmt_time

STATE_STYLE = {"ok": "bold green", "tripped": "bold red", "cooling_down": "bold yellow"}


def gauge(used: float, limit: float, width: int = 12) -> str:
    """A text bar of `used` against `limit`, red when it is nearly full."""
    share = 0.0 if limit <= 0 else min(1.0, max(0.0, used / limit))
    filled = round(share * width)
    colour = "red" if share >= 0.8 else "yellow" if share >= 0.5 else "green"
    return f"[{colour}]{'█' * filled}[/]{'░' * (width - filled)}"


class BreakerPanel(ModelPanel[CircuitBreaker]):
    TITLE = "Circuit breaker"
    MODEL = CircuitBreaker
    EMPTY = "no breaker state yet"
    BODY_ID = "breaker-body"

    def compose(self) -> ComposeResult:
        yield from super().compose()
        with Horizontal():
            yield Button("Reset breaker", id="breaker-reset", variant="error", compact=True)

    def describe(self, cb: CircuitBreaker) -> str:
        now = self.clock.now_ms()
        lines = [
            f"State  [{STATE_STYLE[cb.state]}]{cb.state.upper().replace('_', ' ')}[/]"
            + (f"  {cb.reason}" if cb.reason else ""),
            f"Losses in a row {gauge(cb.consecutive_losses, cb.max_consecutive_losses)}"
            f" {cb.consecutive_losses}/{cb.max_consecutive_losses}",
            f"Daily loss      {gauge(cb.daily_loss, cb.max_daily_loss)}"
            f" {cb.daily_loss:,.2f}/{cb.max_daily_loss:,.0f}",
            f"Hourly loss     {gauge(cb.hourly_loss, cb.max_hourly_loss)}"
            f" {cb.hourly_loss:,.2f}/{cb.max_hourly_loss:,.0f}",
            f"Cool-down {cb.cooldown_minutes:g} min",
        ]
        if cb.tripped_at is not None:
            lines.append(f"Tripped {fmt_time(cb.tripped_at)}   resets {fmt_in(cb.resets_at, now)}")
        return "\n".join(lines)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(CommandRequested("circuit_breaker.reset"))
