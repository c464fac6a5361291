"""The kill switch: a confirmation that names what `account.flatten` will do, then its result.

The question lists, from the store, the open positions it will close at market, the count of
open orders it will cancel and whether the autopilot is running (it is stopped). y sends the
command; the dialog then shows the server's answer: what it stopped, cancelled and closed,
and what failed. The panels show the same from the events that follow.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Label, Static

from ginie_protocol import Ack
from ginie_protocol.events import GinieStatus, Order, Position, Topic
from ginie_tui.frames import FramedModal
from ginie_tui.screens.modals import MODAL_CSS, CommandHost
from ginie_tui.store import Store
from ginie_tui.widgets.base import fmt_signed
from ginie_tui.widgets.chains import OPEN_ORDER

ASK_HINT = "y: flatten now   n / esc: cancel"


def open_positions(store: Store) -> list[Position]:
    return [p for p in store.items(Topic.POSITION_UPDATE) if p.size]


def open_orders(store: Store) -> list[Order]:
    return [o for o in store.items(Topic.ORDER_UPDATE) if o.status in OPEN_ORDER]


def describe_plan(store: Store) -> str:
    """What flattening will do now, from the store (console markup)."""
    status = store.one(GinieStatus)
    positions = sorted(open_positions(store), key=lambda p: p.symbol)
    orders = len(open_orders(store))
    running = status is not None and status.running
    lines = [
        "• stop the autopilot" + (" (running now)" if running else " (stopped already)"),
        f"• cancel {orders} open order{'' if orders == 1 else 's'}",
    ]
    if positions:
        lines.append(f"• close {len(positions)} position{'s' if len(positions) > 1 else ''}:")
        lines += [
            f"    {p.symbol:<9} {'LONG' if p.size > 0 else 'SHORT':<5} {abs(p.size):g}"
            f"   uP&L {fmt_signed(p.unrealized_pnl)}"
            for p in positions
        ]
    else:
        lines.append("• close no position (none is open)")
    return "\n".join(lines)


def describe_result(result: dict[str, Any]) -> str:
    """The answer of account.flatten (console markup)."""
    cancelled = result.get("cancelled") or []
    closed = result.get("closed") or []
    failed = result.get("failed") or []
    lines = [
        "Autopilot stopped." if result.get("stopped_autopilot") else "Autopilot was not running.",
        f"Cancelled {len(cancelled)} order{'' if len(cancelled) == 1 else 's'}"
        + (f": {escape(', '.join(map(str, cancelled)))}" if cancelled else "."),
        f"Closed {', '.join(map(str, closed))}." if closed else "Closed no position.",
    ]
    if failed:
        lines.append(f"[bold red]Failed {len(failed)}:[/]")
        lines += [
            f"  [red]{escape(str(f.get('step', '?')))}: {escape(str(f.get('error', '')))}[/]"
            for f in failed
        ]
    else:
        lines.append("[green]Nothing failed.[/]")
    return "\n".join(lines)


class FlattenModal(FramedModal[None]):
    """Confirm the kill switch, send it, show what it did (see the module docstring)."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="FlattenModal")
        + """
    FlattenModal > Vertical { border: thick $error; }
    FlattenModal #flatten-body { height: auto; margin: 1 0; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "flatten", "Flatten"),
        Binding("n,escape", "close", "Cancel"),
    ]

    def __init__(self, store: Store, host: CommandHost) -> None:
        super().__init__()
        self.store = store
        self.host = host
        self.state = "asking"
        """`asking`, `sending` (waiting for the ACK), then `done`."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Kill switch: flatten the account[/]", id="flatten-title")
            yield Static(describe_plan(self.store), id="flatten-body")
            yield Static(f"This trades on your account.  {ASK_HINT}", classes="hint", id="hint")

    def action_flatten(self) -> None:
        if self.state == "asking" and self.host.writable():
            self.state = "sending"
            self._flatten()

    @work(group="flatten")
    async def _flatten(self) -> None:
        self._hint("flattening...")
        ack = await self.host.send_command("account.flatten", {"stop_autopilot": True})
        self.state = "done"
        self.show_answer(ack)

    def show_answer(self, ack: Ack | None) -> None:
        """Show the result (or why there is none) in place of the question."""
        if ack is None:
            self._hint("not sent (see the notification).  esc: close")
            return
        if not ack.ok:
            self.host.report_ack("account.flatten", ack)
            error = ack.error
            text = f"{error.code}: {error.message}" if error is not None else "refused"
            self._hint(f"[red]refused: {escape(text)}[/]  esc: close")
            return
        result = ack.result or {}
        self.query_one("#flatten-title", Label).update("[b]Kill switch: done[/]")
        self.query_one("#flatten-body", Static).update(describe_result(result))
        self._hint("esc: close")
        failed = len(result.get("failed") or [])
        closed = len(result.get("closed") or [])
        self.app.notify(
            f"{closed} closed, {len(result.get('cancelled') or [])} cancelled"
            + (f", {failed} failed" if failed else ""),
            title="Account flattened",
            severity="error" if failed else "information",
        )

    def _hint(self, text: str) -> None:
        self.query_one("#hint", Static).update(text)

    def action_close(self) -> None:
        if self.state != "sending":
            self.dismiss(None)
