"""The order ticket's arithmetic and its reading of the form. Pure: no Textual, no I/O.

`read_form` turns the ticket's text fields into an `OrderForm` (and an error per field that is
not a number); `OrderForm.args` gives the `order.place` arguments; `preview` values the order
before it is confirmed: the notional, the margin it takes (notional / leverage), the loss if
the stop-loss fills and the gain if the take-profit fills. A MARKET order is valued at the
current mark price, a LIMIT order at its limit price, as the server values them; a size given
in USDT buys notional / price (the server then rounds it down to the symbol's step size, so the
preview is approximate there). Fees are not included. `field_of` finds the field an error
message names (the server's refusals start with it: `quantity: 0.0005 is below ...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ginie_protocol.events import Side

OrderKind = Literal["MARKET", "LIMIT"]
SizeUnit = Literal["quantity", "notional"]
FIELDS = (
    "symbol",
    "side",
    "type",
    "quantity",
    "notional",
    "price",
    "take_profit",
    "stop_loss",
    "leverage",
)
"""The arguments of `order.place`, which error messages start with."""
PRICES = ("price", "take_profit", "stop_loss")


@dataclass(frozen=True)
class OrderForm:
    """What the ticket holds, as numbers; `size` is a quantity or a USDT notional (`unit`)."""

    symbol: str
    side: Side
    type: OrderKind
    size: float | None
    unit: SizeUnit = "quantity"
    price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    leverage: int | None = None

    def args(self) -> dict[str, Any]:
        """The `order.place` arguments (fields left empty are left out)."""
        args: dict[str, Any] = {"symbol": self.symbol, "side": self.side, "type": self.type}
        if self.size is not None:
            args[self.unit] = self.size
        for name in ("price", "take_profit", "stop_loss", "leverage"):
            value = getattr(self, name)
            if value is not None:
                args[name] = value
        return args


@dataclass(frozen=True)
class Preview:
    """The order valued before it is sent; None where a number is missing."""

    entry: float | None
    """The price the entry is valued at: the limit price, or the mark for a MARKET order."""
    quantity: float | None
    notional: float | None
    margin: float | None
    leverage: int
    loss_at_stop: float | None
    """P&L if the stop-loss fills (negative), in USDT."""
    gain_at_target: float | None
    """P&L if the take-profit fills (positive), in USDT."""


def read_form(
    texts: Mapping[str, str], side: Side, kind: OrderKind, unit: SizeUnit
) -> tuple[OrderForm, dict[str, str]]:
    """The form from the ticket's fields (`symbol`, `size`, `price`, `take_profit`,
    `stop_loss`, `leverage`), and an error by field name for each that is not a number. The
    price is read for a LIMIT order only; the symbol is upper-cased."""
    errors: dict[str, str] = {}
    numbers: dict[str, float | None] = {}
    for name in ("size", *PRICES):
        raw = texts.get(name, "").strip()
        if name == "price" and kind == "MARKET":
            raw = ""
        numbers[name] = _number(raw, name, errors)
    leverage_text = texts.get("leverage", "").strip()
    leverage: int | None = None
    if leverage_text:
        try:
            leverage = int(leverage_text)
        except ValueError:
            errors["leverage"] = f"{leverage_text!r} is not a whole number"
    form = OrderForm(
        symbol=texts.get("symbol", "").strip().upper(),
        side=side,
        type=kind,
        size=numbers["size"],
        unit=unit,
        price=numbers["price"],
        take_profit=numbers["take_profit"],
        stop_loss=numbers["stop_loss"],
        leverage=leverage,
    )
    if form.size is None and "size" not in errors:
        errors["size"] = "give a quantity or a USDT amount"
    if not form.symbol:
        errors["symbol"] = "give a symbol"
    return form, errors


def _number(raw: str, name: str, errors: dict[str, str]) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        errors[name] = f"{raw!r} is not a number"
        return None


def preview(form: OrderForm, mark: float | None, default_leverage: int) -> Preview:
    """Value `form` at `mark` (see the module docstring); `default_leverage` is the rules'
    leverage, which the server uses when the ticket gives none."""
    leverage = form.leverage if form.leverage and form.leverage > 0 else default_leverage
    entry = form.price if form.type == "LIMIT" else mark
    if entry is None or entry <= 0 or form.size is None or form.size <= 0:
        return Preview(entry, None, None, None, leverage, None, None)
    if form.unit == "quantity":
        quantity, notional = form.size, form.size * entry
    else:
        quantity, notional = form.size / entry, form.size
    direction = 1 if form.side == "BUY" else -1
    loss = None if form.stop_loss is None else (form.stop_loss - entry) * quantity * direction
    gain = None if form.take_profit is None else (form.take_profit - entry) * quantity * direction
    return Preview(entry, quantity, notional, notional / max(1, leverage), leverage, loss, gain)


def field_of(message: str) -> tuple[str | None, str]:
    """The field an error message starts with (`quantity: ...`) and the rest of it; None and
    the whole message when it names none. The console's own check prefixes the command name
    (`order.place: `) and pydantic's model checks `Value error, `; both are taken off."""
    text = message.removeprefix("order.place: ").removeprefix("Value error, ")
    field, sep, rest = text.partition(": ")
    if sep and field in FIELDS:
        return field, rest
    return None, text
