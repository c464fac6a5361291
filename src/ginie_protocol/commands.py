"""Client-to-server commands: their names and the arguments each one takes.

`parse_command_args(name, args)` is the one check the server runs before a command reaches
its handler; it raises `CommandArgsError` with a message fit to show a user.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ginie_protocol.events import Mode, Side


class CommandArgs(BaseModel):
    """Base of every command's arguments: unknown arguments are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(CommandArgs):
    """A command that takes no arguments."""


class SignalApprove(CommandArgs):
    signal_id: str = Field(min_length=1, max_length=128)


class SignalReject(CommandArgs):
    signal_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=500)


class ModePause(CommandArgs):
    mode: Mode
    minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)


class ModeResume(CommandArgs):
    mode: Mode


class SetRules(CommandArgs):
    """Any subset of the autopilot rule fields; absent fields keep their value."""

    min_confidence: float | None = Field(default=None, ge=0, le=1)
    max_open_positions: int | None = Field(default=None, ge=0, le=100)
    allowed_symbols: list[str] | None = Field(default=None, max_length=100)
    auto_execute: bool | None = None
    signal_ttl_seconds: int | None = Field(default=None, ge=10, le=86_400)
    risk_per_trade_pct: float | None = Field(default=None, gt=0, le=10)
    leverage: int | None = Field(default=None, ge=1, le=125)
    max_consecutive_losses: int | None = Field(default=None, ge=1, le=100)
    max_daily_loss: float | None = Field(default=None, gt=0)
    max_hourly_loss: float | None = Field(default=None, gt=0)
    cooldown_minutes: float | None = Field(default=None, ge=0, le=24 * 60)
    mode_allocation_pct: dict[Mode, float] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SetRules:
        if not self.model_fields_set:
            raise ValueError("give at least one rule field")
        return self


class OrderCancel(CommandArgs):
    order_id: str | None = Field(default=None, min_length=1, max_length=64)
    client_order_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_id(self) -> OrderCancel:
        if (self.order_id is None) == (self.client_order_id is None):
            raise ValueError("give exactly one of order_id or client_order_id")
        return self


class PositionClose(CommandArgs):
    symbol: str = Field(min_length=1, max_length=32)


class OrderPlace(CommandArgs):
    """A manual trade: an entry by quantity or by USDT notional, with optional exits.

    The server checks it against the exchange's filters (tick size, step size, minimum
    notional, margin) before anything is sent; this model checks only its shape."""

    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    type: Literal["MARKET", "LIMIT"]
    quantity: float | None = Field(default=None, gt=0)
    notional: float | None = Field(default=None, gt=0)
    """Size in USDT instead of `quantity`: the quantity is notional / price."""
    price: float | None = Field(default=None, gt=0)
    """The limit price; LIMIT only."""
    take_profit: float | None = Field(default=None, gt=0)
    stop_loss: float | None = Field(default=None, gt=0)
    leverage: int | None = Field(default=None, ge=1, le=125)

    @model_validator(mode="after")
    def _consistent(self) -> OrderPlace:
        if (self.quantity is None) == (self.notional is None):
            raise ValueError("give exactly one of quantity or notional")
        if self.type == "LIMIT" and self.price is None:
            raise ValueError("price: a LIMIT order needs a price")
        if self.type == "MARKET" and self.price is not None:
            raise ValueError("price: a MARKET order takes no price")
        return self


class AccountFlatten(CommandArgs):
    """The kill switch: stop the autopilot, cancel every open order, close every position."""

    stop_autopilot: bool = True


CommandName = Literal[
    "signal.approve",
    "signal.reject",
    "ginie.start",
    "ginie.stop",
    "circuit_breaker.reset",
    "mode.pause",
    "mode.resume",
    "autopilot.set_rules",
    "order.cancel",
    "position.close",
    "order.place",
    "account.flatten",
]

COMMAND_ARGS: dict[str, type[CommandArgs]] = {
    "signal.approve": SignalApprove,
    "signal.reject": SignalReject,
    "ginie.start": NoArgs,
    "ginie.stop": NoArgs,
    "circuit_breaker.reset": NoArgs,
    "mode.pause": ModePause,
    "mode.resume": ModeResume,
    "autopilot.set_rules": SetRules,
    "order.cancel": OrderCancel,
    "position.close": PositionClose,
    "order.place": OrderPlace,
    "account.flatten": AccountFlatten,
}
"""Every command of the contract and the model of its arguments."""

TRADING_COMMANDS: frozenset[str] = frozenset(
    {
        "signal.approve",
        "order.cancel",
        "position.close",
        "ginie.start",
        "circuit_breaker.reset",
        "order.place",
        "account.flatten",
    }
)
"""Commands that can open, close or cancel trades: the console confirms these first."""


class CommandArgsError(ValueError):
    """A command's name is unknown or its arguments do not fit; the message says which."""


def parse_command_args(name: str, args: dict[str, object]) -> CommandArgs:
    """Validate `args` for command `name`, or raise CommandArgsError with a readable reason."""
    model = COMMAND_ARGS.get(name)
    if model is None:
        raise CommandArgsError(f"unknown command {name!r}")
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise CommandArgsError(f"{name}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first validation problem, as `field: message`, without pydantic's URLs."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
