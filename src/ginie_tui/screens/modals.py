"""Modal dialogs: confirm a trading command, review pending signals, edit autopilot rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from ginie_protocol import TRADING_COMMANDS, Ack, CommandArgsError, parse_command_args
from ginie_protocol.events import Signal, Topic
from ginie_tui.frames import FramedModal
from ginie_tui.store import Store
from ginie_tui.widgets.base import CommandRequested, Ranked, fmt_price, fmt_time
from ginie_tui.widgets.rowlog import RowLog
from ginie_tui.widgets.signals import STATUS_STYLE

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 76;
    max-width: 100%;
    height: auto;
    max-height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 0 1;
}}
{name} .hint {{ color: $text-muted; }}
"""


class CommandHost(Protocol):
    """What a dialog that sends its command itself (to show the answer) needs from the app."""

    def writable(self) -> bool:
        """True while LIVE; otherwise says the console is read-only and returns False."""

    async def send_command(self, name: str, args: Mapping[str, Any]) -> Ack | None:
        """The command's ACK, or None when it was not sent or not answered (said already)."""

    def report_ack(self, name: str, ack: Ack) -> None:
        """Notify what an ACK says."""


class ConfirmModal(FramedModal[bool]):
    """Ask before a command that trades; y confirms, n or escape cancels."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmModal")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]{self.question}[/]")
            yield Static("This trades on your account.  y: yes   n / esc: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PendingSignalsModal(FramedModal[None]):
    """Pending signals to approve (a) or reject (r). Approving trades, so the modal asks first,
    in its own hint line (y / n), with the signal still in view. Statuses shown come only from
    the server's SIGNAL_UPDATE events: a signal stays `pending` here until its event says so."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="PendingSignalsModal")
        + """
    PendingSignalsModal RowLog { height: auto; max-height: 14; }
    """
    )
    BINDINGS = [
        Binding("a", "decide('signal.approve')", "Approve"),
        Binding("r", "decide('signal.reject')", "Reject"),
        Binding("y", "confirm", "Yes", show=False),
        Binding("n", "cancel", "No", show=False),
        Binding("escape,q", "close", "Close"),
    ]
    HINT = "a: approve   r: reject   esc: close"
    COLUMNS = (
        ("time", "Time", 8),
        ("id", "Signal", 10),
        ("symbol", "Symbol", 9),
        ("dir", "Dir", 5),
        ("conf", "Conf", 4),
        ("entry", "Entry", 10),
        ("status", "Status", 8),
    )

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.shown: set[str] = set()
        """Signals listed: those pending when the modal opened or later, kept after a decision."""
        self.asking: tuple[str, str] | None = None
        """The command and signal waiting for y / n, if any."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Pending signals[/]")
            yield RowLog(self.COLUMNS, max_rows=100, id="pending-table")
            yield Static(self.HINT, classes="hint", id="pending-hint")

    def on_mount(self) -> None:
        self.refresh_signals()

    def refresh_signals(self) -> None:
        """Render from the store: pending signals, and the ones shown here that were decided."""
        for s in self.store.items(Topic.SIGNAL_UPDATE):
            if s.status == "pending":
                self.shown.add(s.signal_id)
        rows = [
            (key, self._cells(signal))
            for key in self.shown
            if (signal := self.store.get(Topic.SIGNAL_UPDATE, key)) is not None
        ]
        self.query_one(RowLog).replace_all(rows)
        if not rows:
            self._hint("No pending signals.  esc: close")

    def selected(self) -> Signal | None:
        key = self.query_one(RowLog).selected_key
        return self.store.get(Topic.SIGNAL_UPDATE, key) if key else None

    def action_decide(self, name: str) -> None:
        signal = self.selected()
        if signal is None:
            return
        if signal.status != "pending":
            self.notify(f"{signal.signal_id} is already {signal.status}", severity="warning")
            return
        if name in TRADING_COMMANDS:
            self.asking = (name, signal.signal_id)
            self._hint(
                f"[b]{name} {signal.signal_id}: {signal.direction} {signal.symbol} at "
                f"{fmt_price(signal.entry_price)}?[/]  This trades.  y: yes   n / esc: no"
            )
            return
        self._send(name, signal.signal_id)

    def action_confirm(self) -> None:
        if self.asking is not None:
            name, signal_id = self.asking
            self.asking = None
            self._send(name, signal_id)

    def action_cancel(self) -> None:
        if self.asking is not None:
            self.asking = None
            self._hint(self.HINT)

    def action_close(self) -> None:
        if self.asking is not None:
            self.action_cancel()
        else:
            self.dismiss(None)

    def _send(self, name: str, signal_id: str) -> None:
        """Ask the app to send; the modal has confirmed already when the command trades."""
        self.app.post_message(CommandRequested(name, {"signal_id": signal_id}, confirmed=True))
        self._hint(f"{name} {signal_id} requested: the status shown is the server's.  {self.HINT}")

    def _hint(self, text: str) -> None:
        self.query_one("#pending-hint", Static).update(text)

    @staticmethod
    def _cells(s: Signal) -> list[Any]:
        return [
            Ranked(fmt_time(s.created_at), (s.created_at, s.signal_id)),
            s.signal_id,
            s.symbol,
            s.direction,
            f"{s.confidence:.2f}",
            fmt_price(s.entry_price),
            f"[{STATUS_STYLE[s.status]}]{s.status}[/]",
        ]


def parse_rule_assignments(text: str) -> dict[str, Any]:
    """`min_confidence=0.7 allowed_symbols=BTCUSDT,ETHUSDT auto_execute=true` to arguments of
    autopilot.set_rules, validated; raises CommandArgsError with a readable reason."""
    args: dict[str, Any] = {}
    for part in text.split():
        name, sep, raw = part.partition("=")
        if not sep or not name:
            raise CommandArgsError(f"{part!r}: write field=value")
        if name == "allowed_symbols":
            args[name] = [s for s in raw.split(",") if s]
            continue
        try:
            args[name] = json.loads(raw)
        except ValueError:
            args[name] = raw
    parse_command_args("autopilot.set_rules", args)
    return args


class RulesModal(FramedModal[None]):
    """Edit autopilot rules as `field=value` pairs; sends autopilot.set_rules."""

    DEFAULT_CSS = MODAL_CSS.format(name="RulesModal")
    BINDINGS = [Binding("escape", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Set autopilot rules[/]")
            yield Input(placeholder="min_confidence=0.7 max_open_positions=3", id="rules-input")
            yield Static(
                "Fields: min_confidence max_open_positions allowed_symbols auto_execute "
                "signal_ttl_seconds risk_per_trade_pct leverage max_consecutive_losses "
                "max_daily_loss max_hourly_loss cooldown_minutes.  enter: send  esc: close",
                classes="hint",
                id="rules-hint",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            args = parse_rule_assignments(event.value)
        except CommandArgsError as exc:
            self.query_one("#rules-hint", Static).update(f"[red]{exc}[/]")
            return
        self.app.post_message(CommandRequested("autopilot.set_rules", args))
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
