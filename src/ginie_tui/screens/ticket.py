"""The order ticket: a manual order (`order.place`) with its value shown before it is confirmed.

Fields: symbol, side, type, size (a quantity or USDT), limit price, take-profit, stop-loss,
leverage. Below them the preview (`ticket.preview`, from the mark price in the store, kept
current while the ticket is open): notional, margin, loss at the stop, gain at the target.
Enter checks the form, asks for confirmation with that preview, and sends; the ticket stays
open until the server accepts, and a refusal is shown next to the field it names.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from ginie_protocol import CommandArgsError, parse_command_args
from ginie_protocol.events import AutopilotRules, Side
from ginie_tui.frames import FramedModal
from ginie_tui.screens.modals import MODAL_CSS, CommandHost, ConfirmModal
from ginie_tui.store import Store
from ginie_tui.ticket import OrderForm, OrderKind, Preview, SizeUnit, field_of, preview, read_form
from ginie_tui.widgets.base import fmt_num, fmt_price

DEFAULT_LEVERAGE = 5
"""The leverage shown when the store has no autopilot rules yet."""
INPUTS: tuple[tuple[str, str, Literal["text", "number", "integer"]], ...] = (
    ("symbol", "Symbol", "text"),
    ("size", "Size", "number"),
    ("price", "Limit price", "number"),
    ("take_profit", "Take-profit", "number"),
    ("stop_loss", "Stop-loss", "number"),
    ("leverage", "Leverage", "integer"),
)
WIDGET_OF = {"quantity": "size", "notional": "size"}
"""The ticket field that shows an argument's errors, where its name differs."""
ERROR_FIELDS = frozenset({"symbol", "side", "type", "unit", *(name for name, _, _ in INPUTS)})
"""The ticket fields with an error line of their own."""
HINT = "enter: review and place   esc: close"


def default_symbol(store: Store) -> str:
    """The first symbol the autopilot trades that has market data, else the first with any."""
    symbols = store.market_symbols()
    rules = store.one(AutopilotRules)
    for symbol in rules.allowed_symbols if rules is not None else []:
        if symbol in symbols:
            return symbol
    return symbols[0] if symbols else ""


def describe_preview(form: OrderForm, p: Preview, mark: float | None) -> str:
    """The preview lines (console markup)."""
    if p.entry is None:
        where = "no mark price yet" if form.type == "MARKET" else "give a limit price"
        return f"[dim]{where}: the order cannot be valued[/]"
    at = "mark" if form.type == "MARKET" else "limit"
    lines = [f"Entry {fmt_price(p.entry)} ({at})   mark {fmt_price(mark)}"]
    if p.notional is None or p.quantity is None:
        lines.append("[dim]give a size to value the order[/]")
        return "\n".join(lines)
    approx = "≈ " if form.unit == "notional" else ""
    lines.append(
        f"Quantity {approx}{p.quantity:.6g}   notional [b]{fmt_num(p.notional)}[/] USDT"
        f"   margin [b]{fmt_num(p.margin)}[/] USDT at {p.leverage}x"
    )
    loss = "-" if p.loss_at_stop is None else _signed(p.loss_at_stop)
    gain = "-" if p.gain_at_target is None else _signed(p.gain_at_target)
    lines.append(f"Loss at stop {loss} USDT   gain at target {gain} USDT   (before fees)")
    return "\n".join(lines)


def _signed(value: float) -> str:
    colour = "green" if value > 0 else "red" if value < 0 else "default"
    return f"[{colour}]{value:+,.2f}[/]"


class OrderTicket(FramedModal[None]):
    """The order ticket (see the module docstring)."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="OrderTicket")
        + """
    OrderTicket .title { margin-bottom: 1; }
    OrderTicket .row { height: 1; }
    OrderTicket .row Label { width: 13; }
    OrderTicket .row Input, OrderTicket .row Select { width: 20; }
    OrderTicket .row .error { width: 1fr; padding-left: 1; color: $text-error; }
    OrderTicket #ticket-preview { height: 3; margin: 1 0; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, store: Store, host: CommandHost) -> None:
        super().__init__()
        self.store = store
        self.host = host
        self.symbol = default_symbol(store)
        """The symbol the ticket opens with."""
        self.sending = False
        """True while an order.place waits for its ACK (enter does nothing meanwhile)."""

    def compose(self) -> ComposeResult:
        leverage = self._default_leverage()
        selects = {
            name: Select(options, value=options[0][1], allow_blank=False, compact=True, id=name)
            for name, options in (
                ("side", [("BUY", "BUY"), ("SELL", "SELL")]),
                ("type", [("MARKET", "MARKET"), ("LIMIT", "LIMIT")]),
                ("unit", [("quantity", "quantity"), ("USDT notional", "notional")]),
            )
        }
        with Vertical():
            yield Label(
                "[b]Order ticket[/]  a manual order: one chain, with its exits", classes="title"
            )
            yield self._row("Symbol", Input(self.symbol, id="symbol", compact=True), "symbol")
            yield self._row("Side", selects["side"], "side")
            yield self._row("Type", selects["type"], "type")
            yield self._row("Size in", selects["unit"], "unit")
            for name, label, kind in INPUTS[1:]:
                placeholder = {
                    "price": "LIMIT only",
                    "take_profit": "optional",
                    "stop_loss": "optional",
                    "leverage": f"{leverage} (the rules')",
                }.get(name, "")
                field = Input(placeholder=placeholder, type=kind, id=name, compact=True)
                yield self._row(label, field, name)
            yield Static(id="ticket-preview")
            yield Static(HINT, classes="hint", id="ticket-hint")

    @staticmethod
    def _row(label: str, field: Input | Select[str], name: str) -> Horizontal:
        return Horizontal(
            Label(label), field, Static(classes="error", id=f"{name}-error"), classes="row"
        )

    def on_mount(self) -> None:
        self.query_one("#size", Input).focus()
        self._price_enabled()
        self.refresh_preview()

    # ------------------------------------------------------------------ the form

    def form(self) -> tuple[OrderForm, dict[str, str]]:
        """The form as it stands, and the fields that are not numbers."""
        texts = {name: self.query_one(f"#{name}", Input).value for name, _, _ in INPUTS}
        side: Side = self._choice("side")  # type: ignore[assignment]
        kind: OrderKind = self._choice("type")  # type: ignore[assignment]
        unit: SizeUnit = self._choice("unit")  # type: ignore[assignment]
        return read_form(texts, side, kind, unit)

    def _choice(self, name: str) -> str:
        return str(self.query_one(f"#{name}", Select).value)

    def _default_leverage(self) -> int:
        rules = self.store.one(AutopilotRules)
        return rules.leverage if rules is not None else DEFAULT_LEVERAGE

    def refresh_preview(self) -> None:
        """Value the order at the mark price now in the store (once the fields exist)."""
        if not self.query("#ticket-preview"):
            return
        form, _ = self.form()
        mark_price = self.store.mark_price(form.symbol)
        mark = mark_price.mark_price if mark_price is not None else None
        shown = describe_preview(form, preview(form, mark, self._default_leverage()), mark)
        self.query_one("#ticket-preview", Static).update(shown)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_error(event.input.id, "")
        self.refresh_preview()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._price_enabled()
        self.refresh_preview()

    def _price_enabled(self) -> None:
        self.query_one("#price", Input).disabled = self._choice("type") != "LIMIT"

    def _show_error(self, name: str | None, text: str) -> None:
        """Show `text` next to field `name` (in the hint line when no field has that name)."""
        widget = WIDGET_OF.get(name or "", name or "")
        found = self.query(f"#{widget}-error") if widget in ERROR_FIELDS else None
        if found:
            found.first(Static).update(escape(text))
        elif text:
            self._hint(f"[red]{escape(text)}[/]")

    def _hint(self, text: str) -> None:
        self.query_one("#ticket-hint", Static).update(text)

    # ------------------------------------------------------------------ placing

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_place()

    def action_place(self) -> None:
        """Check the form, then ask, showing what the order takes and risks."""
        if self.sending or not self.host.writable():
            return
        form, errors = self.form()
        for name, _, _ in INPUTS:
            self._show_error(name, errors.get(name, ""))
        if errors:
            return
        args = form.args()
        try:
            parse_command_args("order.place", args)
        except CommandArgsError as exc:
            field, text = field_of(str(exc))
            self._show_error(field, text)
            return
        mark_price = self.store.mark_price(form.symbol)
        mark = mark_price.mark_price if mark_price is not None else None
        p = preview(form, mark, self._default_leverage())
        question = f"{self._summary(form)}\n{describe_preview(form, p, mark)}\nPlace it?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._place(args)

        self.app.push_screen(ConfirmModal(question), answered)

    @staticmethod
    def _summary(form: OrderForm) -> str:
        size = f"{form.size:g}" + (" USDT of" if form.unit == "notional" else "")
        at = "at market" if form.type == "MARKET" else f"limit {fmt_price(form.price)}"
        exits = [
            f"{name} {fmt_price(price)}"
            for name, price in (("target", form.take_profit), ("stop", form.stop_loss))
            if price is not None
        ]
        return f"{form.side} {size} {form.symbol} {at}" + (f", {', '.join(exits)}" if exits else "")

    @work(group="ticket")
    async def _place(self, args: dict[str, Any]) -> None:
        self.sending = True
        self._hint("placing the order...")
        try:
            ack = await self.host.send_command("order.place", args)
        finally:
            self.sending = False
        if ack is None:
            self._hint(f"[red]not sent[/] (see the notification)   {HINT}")
            return
        if ack.ok:
            chain = (ack.result or {}).get("chain_id", "?")
            self.app.notify(f"{self._summary(self.form()[0])}: chain {chain}", title="Order placed")
            self.dismiss(None)
            return
        message = ack.error.message if ack.error is not None else "refused"
        field, text = field_of(message)
        if field is None or ack.error is None or ack.error.code == "rate_limited":
            self.host.report_ack("order.place", ack)
            self._hint(f"[red]{escape(text)}[/]   {HINT}")
            return
        self._show_error(field, text)
        self._hint(f"[red]refused:[/] see {WIDGET_OF.get(field, field)}   {HINT}")

    def action_close(self) -> None:
        self.dismiss(None)
