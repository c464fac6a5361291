"""The twenty event types: one model for each event's `data`, and one declaration per type.

Each event type is a `Topic` and one `declare(...)` call: its `data` model, its scope (one user's
or public market data), the field that keys its items, its REST snapshot path and the order its
snapshot is served in. The declaration builds the type's envelope model and its `EventSpec`;
`SPECS` holds them in SPEC order, and every other table (the `Event` union, `KEY_FIELD`,
`SNAPSHOT_PATH`, ...) is derived from `SPECS`. Adding an event type takes its data model, its
`Topic` member and its `declare(...)` call, nothing else in this package.

Every `data` model maps to exactly one event type (`spec_of`). Collection topics (positions,
orders, signals, ...) carry one item per event and are keyed by `EventSpec.key`; the REST snapshot
of such a topic is a list of items. Singleton topics (P&L, breaker, rules, ...) carry the whole
state in every event, and their snapshot is that same object.

Numbers are JSON floats; times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import reduce
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"]
Mode = Literal["scalp", "swing", "position"]
ChainStatus = Literal["pending", "open", "partially_closed", "closed", "cancelled", "failed"]
SignalStatus = Literal["pending", "approved", "rejected", "executed", "expired"]
Health = Literal["ok", "degraded", "down"]


class WireModel(BaseModel):
    """Base of every wire model: unknown fields from a newer peer are ignored, models are frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------------------- exchange (user)


class Position(WireModel):
    """One-way position in a symbol; `size` is signed (negative is short, zero is flat)."""

    symbol: str
    size: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    leverage: int
    liquidation_price: float | None = None
    margin: float = 0.0
    updated_at: int


class Order(WireModel):
    """An order as the exchange reports it; `chain_id` ties it to a trade-lifecycle chain."""

    order_id: str
    client_order_id: str
    chain_id: str | None = None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: float | None = None
    stop_price: float | None = None
    quantity: float
    filled_qty: float = 0.0
    avg_price: float | None = None
    reduce_only: bool = False
    reason: str | None = None
    created_at: int
    updated_at: int


class Trade(WireModel):
    """A fill of an order; `realized_pnl` is gross of `fee`."""

    trade_id: str
    order_id: str
    client_order_id: str
    chain_id: str | None = None
    symbol: str
    side: Side
    price: float
    quantity: float
    fee: float
    fee_asset: str = "USDT"
    realized_pnl: float = 0.0
    maker: bool = False
    time: int


class Balance(WireModel):
    """Wallet balance of one asset in the futures account."""

    asset: str
    wallet_balance: float
    available_balance: float
    unrealized_pnl: float = 0.0
    margin_used: float = 0.0
    updated_at: int


# ---------------------------------------------------------------------------- trade lifecycle


class Chain(WireModel):
    """An order chain: an entry with its take-profits and stop-loss, linked by client order ids."""

    chain_id: str
    symbol: str
    direction: Literal["LONG", "SHORT"]
    mode: Mode
    source: Literal["autopilot", "manual"]
    strategy: str
    signal_id: str | None = None
    status: ChainStatus
    entry_client_order_id: str
    take_profit_client_order_ids: list[str] = []
    stop_loss_client_order_id: str | None = None
    quantity: float
    remaining_qty: float
    entry_price: float | None = None
    take_profit_prices: list[float] = []
    stop_loss_price: float | None = None
    realized_pnl: float = 0.0
    close_reason: str | None = None
    opened_at: int
    closed_at: int | None = None


class LifecycleEvent(WireModel):
    """One row of `trade_lifecycle_events`: a step in a chain's life, with what it carried."""

    id: int
    chain_id: str
    symbol: str
    step: str
    message: str
    details: dict[str, str | float | int | bool | None] = {}
    time: int


# ---------------------------------------------------------------------------- autopilot


class Decision(WireModel):
    """The autopilot's latest decision about one symbol and why."""

    symbol: str
    action: str
    reason: str
    time: int


class GinieStatus(WireModel):
    """Autopilot state, scan progress and diagnostics."""

    running: bool
    state: Literal["running", "stopped", "blocked"]
    scans: int = 0
    last_scan_at: int | None = None
    next_scan_at: int | None = None
    symbols: list[str] = []
    signals_today: int = 0
    open_positions: int = 0
    last_decision: Decision | None = None
    recent_decisions: list[Decision] = []
    rejections_by_reason: dict[str, int] = {}
    blocked_reason: str | None = None


class Signal(WireModel):
    """A trade idea raised from the klines, waiting for approval or already decided."""

    signal_id: str
    symbol: str
    direction: Literal["LONG", "SHORT"]
    mode: Mode
    strategy: str
    confidence: float
    entry_price: float
    take_profit: float
    stop_loss: float
    status: SignalStatus
    reason: str = ""
    chain_id: str | None = None
    indicators: dict[str, float] = {}
    created_at: int
    expires_at: int
    decided_at: int | None = None


class CircuitBreaker(WireModel):
    """The breaker that blocks new entries after too many losses."""

    state: Literal["ok", "tripped", "cooling_down"]
    reason: str | None = None
    consecutive_losses: int = 0
    daily_loss: float = 0.0
    hourly_loss: float = 0.0
    max_consecutive_losses: int
    max_daily_loss: float
    max_hourly_loss: float
    cooldown_minutes: float
    tripped_at: int | None = None
    resets_at: int | None = None


class ModeSafety(WireModel):
    """Safety state of one trading mode."""

    mode: Mode
    status: Literal["active", "paused", "blocked"]
    reason: str | None = None
    paused_until: int | None = None
    consecutive_losses: int = 0
    loss_today: float = 0.0
    max_consecutive_losses: int
    max_loss_today: float


class ModeAllocation(WireModel):
    """Capital allocated to and used by one trading mode."""

    mode: Mode
    allocated_pct: float
    allocated_usd: float
    used_usd: float
    available_usd: float
    open_positions: int = 0


class AutopilotRules(WireModel):
    """The rules the autopilot trades by, including the circuit breaker's limits."""

    min_confidence: float
    max_open_positions: int
    allowed_symbols: list[str]
    auto_execute: bool
    signal_ttl_seconds: int
    risk_per_trade_pct: float
    leverage: int
    max_consecutive_losses: int
    max_daily_loss: float
    max_hourly_loss: float
    cooldown_minutes: float
    mode_allocation_pct: dict[str, float]


# ---------------------------------------------------------------------------- P&L and stats


class Pnl(WireModel):
    """Realized (net of fees) and unrealized P&L, with the breakdowns and a short equity curve."""

    realized_today: float
    realized_total: float
    unrealized: float
    fees_total: float
    equity: float
    wins: int = 0
    losses: int = 0
    win_rate: float = 0.0
    by_symbol: dict[str, float] = {}
    by_mode: dict[str, float] = {}
    by_strategy: dict[str, float] = {}
    equity_curve: list[float] = []


class PerformanceRow(WireModel):
    """Closed-trade results for one symbol or one strategy."""

    key: str
    trades: int
    wins: int
    losses: int
    win_rate: float
    pnl: float
    avg_pnl: float


class Performance(WireModel):
    """Per-symbol and per-strategy performance of closed chains."""

    by_symbol: list[PerformanceRow] = []
    by_strategy: list[PerformanceRow] = []


class Stats(WireModel):
    """Trade counts by source."""

    total_trades: int = 0
    trades_today: int = 0
    by_source: dict[str, int] = {}
    open_chains: int = 0


# ---------------------------------------------------------------------------- system


class ComponentHealth(WireModel):
    """Health of one part of the system."""

    status: Health
    detail: str = ""
    since: int


class SystemStatus(WireModel):
    """Health of the exchange link, the database and the engine."""

    exchange: ComponentHealth
    database: ComponentHealth
    engine: ComponentHealth
    started_at: int
    version: str


class ApiHealth(WireModel):
    """Exchange API health and the request weight used in the current minute."""

    exchange: str
    status: Health
    latency_ms: float | None = None
    weight_used: int = 0
    weight_limit: int = 2400
    last_error: str | None = None
    updated_at: int


# ---------------------------------------------------------------------------- market (public)


class MarkPrice(WireModel):
    """Mark price and funding of one symbol."""

    symbol: str
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time: int
    time: int


class Kline(WireModel):
    """One candle; `closed` is false while the candle is still forming."""

    symbol: str
    interval: str = "1m"
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class OrderBook(WireModel):
    """Top of the book and a few levels of depth, each level `[price, quantity]`."""

    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    time: int


# ---------------------------------------------------------------------------- declarations


class Scope(StrEnum):
    """Whose an event is: one user's (numbered by `seq`, never dropped) or public market data."""

    USER = "user"
    MARKET = "market"


class Topic(StrEnum):
    """The twenty event types, in the order of SPEC section 4; each member is its wire name.

    A member equals and hashes like its name, so plain strings still find `Topic` keys."""

    POSITION_UPDATE = "POSITION_UPDATE"
    ORDER_UPDATE = "ORDER_UPDATE"
    TRADE_UPDATE = "TRADE_UPDATE"
    BALANCE_UPDATE = "BALANCE_UPDATE"
    CHAIN_UPDATE = "CHAIN_UPDATE"
    LIFECYCLE_EVENT = "LIFECYCLE_EVENT"
    GINIE_STATUS_UPDATE = "GINIE_STATUS_UPDATE"
    SIGNAL_UPDATE = "SIGNAL_UPDATE"
    CIRCUIT_BREAKER_UPDATE = "CIRCUIT_BREAKER_UPDATE"
    MODE_SAFETY_UPDATE = "MODE_SAFETY_UPDATE"
    MODE_ALLOCATION_UPDATE = "MODE_ALLOCATION_UPDATE"
    AUTOPILOT_RULES_UPDATE = "AUTOPILOT_RULES_UPDATE"
    PNL_UPDATE = "PNL_UPDATE"
    PERFORMANCE_UPDATE = "PERFORMANCE_UPDATE"
    STATS_UPDATE = "STATS_UPDATE"
    SYSTEM_STATUS_UPDATE = "SYSTEM_STATUS_UPDATE"
    HEALTH_UPDATE = "HEALTH_UPDATE"
    FUTURES_MARK_PRICE_UPDATE = "FUTURES_MARK_PRICE_UPDATE"
    FUTURES_KLINE_UPDATE = "FUTURES_KLINE_UPDATE"
    FUTURES_ORDERBOOK_UPDATE = "FUTURES_ORDERBOOK_UPDATE"


class _EventEnvelope(WireModel):
    """`seq` and `epoch` are set on user events and absent on market events.

    Each event type's envelope narrows `type` to its topic's name (and defaults it to that name)
    and `data` to its model."""

    type: str = ""
    seq: int | None = None
    epoch: str | None = None
    ts: int
    data: WireModel


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything both sides need to know about one event type."""

    topic: Topic
    model: type[WireModel]
    """The `data` model."""
    envelope: type[_EventEnvelope]
    """The envelope model: `type`, `seq`, `epoch`, `ts` and `data`."""
    scope: Scope
    key: str | None
    """The field that keys a collection topic's items; None for a singleton topic."""
    snapshot_path: str | None
    """The REST snapshot path; None for market topics, which share `/api/market/{symbol}`."""
    sort: str | None = None
    """A collection snapshot is served in this field's order (then by key); None: by key."""


_declared: dict[Topic, EventSpec] = {}


def declare(
    topic: Topic,
    model: type[WireModel],
    scope: Scope,
    *,
    key: str | None,
    snapshot_path: str | None = None,
    sort: str | None = None,
    name: str | None = None,
) -> type[_EventEnvelope]:
    """Declare one event type: build its envelope model (named `name`, by default the data
    model's name + `Update`), record its `EventSpec`, and return the envelope."""
    for field in (key, sort):
        if field is not None and field not in model.model_fields:
            raise ValueError(f"{topic}: {model.__name__} has no field {field!r}")
    if (scope is Scope.USER) != (snapshot_path is not None):
        raise ValueError(f"{topic}: user topics, and only they, have a snapshot path")
    if topic in _declared or any(s.model is model for s in _declared.values()):
        raise ValueError(f"{topic}: topic or data model declared twice")
    tag: Any = Literal[topic.value]  # the discriminator: exactly this topic's name
    envelope: type[_EventEnvelope] = create_model(
        name or f"{model.__name__}Update",
        __base__=_EventEnvelope,
        __module__=__name__,
        type=(tag, topic.value),
        data=(model, ...),
    )
    _declared[topic] = EventSpec(topic, model, envelope, scope, key, snapshot_path, sort)
    return envelope


_U, _M = Scope.USER, Scope.MARKET

PositionUpdate = declare(
    Topic.POSITION_UPDATE, Position, _U, key="symbol", snapshot_path="/api/futures/positions"
)
OrderUpdate = declare(
    Topic.ORDER_UPDATE,
    Order,
    _U,
    key="order_id",
    snapshot_path="/api/futures/orders/all",
    sort="created_at",
)
TradeUpdate = declare(
    Topic.TRADE_UPDATE, Trade, _U, key="trade_id", snapshot_path="/api/futures/trades", sort="time"
)
BalanceUpdate = declare(
    Topic.BALANCE_UPDATE, Balance, _U, key="asset", snapshot_path="/api/futures/balances"
)
ChainUpdate = declare(
    Topic.CHAIN_UPDATE,
    Chain,
    _U,
    key="chain_id",
    snapshot_path="/api/futures/chains",
    sort="opened_at",
)
LifecycleEventUpdate = declare(
    Topic.LIFECYCLE_EVENT, LifecycleEvent, _U, key="id", snapshot_path="/api/futures/trade-events"
)
GinieStatusUpdate = declare(
    Topic.GINIE_STATUS_UPDATE, GinieStatus, _U, key=None, snapshot_path="/api/ginie/status"
)
SignalUpdate = declare(
    Topic.SIGNAL_UPDATE,
    Signal,
    _U,
    key="signal_id",
    snapshot_path="/api/signals",
    sort="created_at",
)
CircuitBreakerUpdate = declare(
    Topic.CIRCUIT_BREAKER_UPDATE,
    CircuitBreaker,
    _U,
    key=None,
    snapshot_path="/api/circuit-breaker",
)
ModeSafetyUpdate = declare(
    Topic.MODE_SAFETY_UPDATE, ModeSafety, _U, key="mode", snapshot_path="/api/modes/safety"
)
ModeAllocationUpdate = declare(
    Topic.MODE_ALLOCATION_UPDATE,
    ModeAllocation,
    _U,
    key="mode",
    snapshot_path="/api/modes/allocation",
)
AutopilotRulesUpdate = declare(
    Topic.AUTOPILOT_RULES_UPDATE,
    AutopilotRules,
    _U,
    key=None,
    snapshot_path="/api/autopilot/rules",
)
PnlUpdate = declare(Topic.PNL_UPDATE, Pnl, _U, key=None, snapshot_path="/api/pnl")
PerformanceUpdate = declare(
    Topic.PERFORMANCE_UPDATE, Performance, _U, key=None, snapshot_path="/api/performance"
)
StatsUpdate = declare(Topic.STATS_UPDATE, Stats, _U, key=None, snapshot_path="/api/stats")
SystemStatusUpdate = declare(
    Topic.SYSTEM_STATUS_UPDATE, SystemStatus, _U, key=None, snapshot_path="/api/system/status"
)
HealthUpdate = declare(
    Topic.HEALTH_UPDATE,
    ApiHealth,
    _U,
    key=None,
    snapshot_path="/api/system/health",
    name="HealthUpdate",
)
MarkPriceUpdate = declare(Topic.FUTURES_MARK_PRICE_UPDATE, MarkPrice, _M, key="symbol")
KlineUpdate = declare(Topic.FUTURES_KLINE_UPDATE, Kline, _M, key="symbol")
OrderBookUpdate = declare(Topic.FUTURES_ORDERBOOK_UPDATE, OrderBook, _M, key="symbol")


# ---------------------------------------------------------------------------- derived tables

SPECS: Mapping[Topic, EventSpec] = MappingProxyType({topic: _declared[topic] for topic in Topic})
"""Every event type's declaration, in the order of SPEC section 4 (a missing one fails here)."""

_SPEC_OF_MODEL: dict[type, EventSpec] = {s.model: s for s in SPECS.values()}


def spec_of(data: WireModel | type[WireModel]) -> EventSpec:
    """The declaration of the event type whose `data` is this model (an instance or the class).

    Raises KeyError for a model that is not an event's data, TypeError for a non-model."""
    spec = _SPEC_OF_MODEL.get(type(data))  # an instance: the hot path, one lookup
    if spec is not None:
        return spec
    cls = data if isinstance(data, type) else type(data)
    if not issubclass(cls, WireModel):
        raise TypeError(f"{cls.__name__} is not a wire model")
    return _SPEC_OF_MODEL[cls]


USER_TOPICS: tuple[Topic, ...] = tuple(t for t, s in SPECS.items() if s.scope is Scope.USER)
"""The per-user topics, in SPEC order."""

MARKET_TOPICS: tuple[Topic, ...] = tuple(t for t, s in SPECS.items() if s.scope is Scope.MARKET)
"""The public market topics, in SPEC order."""

Event: Any = Annotated[
    reduce(operator.or_, (s.envelope for s in SPECS.values())), Field(discriminator="type")
]
"""Any of the twenty events, discriminated by `type`."""

EventData: Any = reduce(operator.or_, (s.model for s in SPECS.values()))
"""Any event's `data` model."""

ENVELOPE_OF: dict[str, type[_EventEnvelope]] = {t: s.envelope for t, s in SPECS.items()}
"""Event type name to its envelope model."""

EVENT_TYPES: tuple[Topic, ...] = tuple(SPECS)
"""The twenty event type names, in the order of SPEC section 4."""

EVENT_TYPE_OF: dict[type[WireModel], Topic] = {s.model: t for t, s in SPECS.items()}
"""Data model class to its event type name."""

DATA_MODEL_OF: dict[str, type[WireModel]] = {t: s.model for t, s in SPECS.items()}
"""Event type name to its data model class."""

MARKET_TYPES: frozenset[Topic] = frozenset(MARKET_TOPICS)
"""Public market events: no `seq`, may be coalesced per symbol."""

USER_TYPES: frozenset[Topic] = frozenset(USER_TOPICS)
"""Per-user events: numbered by `seq`, never coalesced, never dropped."""

KEY_FIELD: dict[str, str | None] = {t: s.key for t, s in SPECS.items()}
"""The field that keys a collection topic's items; None for a singleton topic."""

SNAPSHOT_PATH: dict[str, str] = {
    t: s.snapshot_path for t, s in SPECS.items() if s.snapshot_path is not None
}
"""REST snapshot path of each user topic. Market topics share `/api/market/{symbol}`."""
