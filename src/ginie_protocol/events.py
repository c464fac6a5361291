"""The twenty event types: one model for each event's `data`, and one envelope model per type.

Every `data` model maps to exactly one event type (`EVENT_TYPE_OF`). Collection topics (positions,
orders, signals, ...) carry one item per event and are keyed by `KEY_FIELD`; the REST snapshot of
such a topic is a list of items. Singleton topics (P&L, breaker, rules, ...) carry the whole state
in every event, and their snapshot is that same object.

Numbers are JSON floats; times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


# ---------------------------------------------------------------------------- envelopes


class _EventEnvelope(WireModel):
    """`seq` and `epoch` are set on user events and absent on market events."""

    type: str
    seq: int | None = None
    epoch: str | None = None
    ts: int


class PositionUpdate(_EventEnvelope):
    type: Literal["POSITION_UPDATE"] = "POSITION_UPDATE"
    data: Position


class OrderUpdate(_EventEnvelope):
    type: Literal["ORDER_UPDATE"] = "ORDER_UPDATE"
    data: Order


class TradeUpdate(_EventEnvelope):
    type: Literal["TRADE_UPDATE"] = "TRADE_UPDATE"
    data: Trade


class BalanceUpdate(_EventEnvelope):
    type: Literal["BALANCE_UPDATE"] = "BALANCE_UPDATE"
    data: Balance


class ChainUpdate(_EventEnvelope):
    type: Literal["CHAIN_UPDATE"] = "CHAIN_UPDATE"
    data: Chain


class LifecycleEventUpdate(_EventEnvelope):
    type: Literal["LIFECYCLE_EVENT"] = "LIFECYCLE_EVENT"
    data: LifecycleEvent


class GinieStatusUpdate(_EventEnvelope):
    type: Literal["GINIE_STATUS_UPDATE"] = "GINIE_STATUS_UPDATE"
    data: GinieStatus


class SignalUpdate(_EventEnvelope):
    type: Literal["SIGNAL_UPDATE"] = "SIGNAL_UPDATE"
    data: Signal


class CircuitBreakerUpdate(_EventEnvelope):
    type: Literal["CIRCUIT_BREAKER_UPDATE"] = "CIRCUIT_BREAKER_UPDATE"
    data: CircuitBreaker


class ModeSafetyUpdate(_EventEnvelope):
    type: Literal["MODE_SAFETY_UPDATE"] = "MODE_SAFETY_UPDATE"
    data: ModeSafety


class ModeAllocationUpdate(_EventEnvelope):
    type: Literal["MODE_ALLOCATION_UPDATE"] = "MODE_ALLOCATION_UPDATE"
    data: ModeAllocation


class AutopilotRulesUpdate(_EventEnvelope):
    type: Literal["AUTOPILOT_RULES_UPDATE"] = "AUTOPILOT_RULES_UPDATE"
    data: AutopilotRules


class PnlUpdate(_EventEnvelope):
    type: Literal["PNL_UPDATE"] = "PNL_UPDATE"
    data: Pnl


class PerformanceUpdate(_EventEnvelope):
    type: Literal["PERFORMANCE_UPDATE"] = "PERFORMANCE_UPDATE"
    data: Performance


class StatsUpdate(_EventEnvelope):
    type: Literal["STATS_UPDATE"] = "STATS_UPDATE"
    data: Stats


class SystemStatusUpdate(_EventEnvelope):
    type: Literal["SYSTEM_STATUS_UPDATE"] = "SYSTEM_STATUS_UPDATE"
    data: SystemStatus


class HealthUpdate(_EventEnvelope):
    type: Literal["HEALTH_UPDATE"] = "HEALTH_UPDATE"
    data: ApiHealth


class MarkPriceUpdate(_EventEnvelope):
    type: Literal["FUTURES_MARK_PRICE_UPDATE"] = "FUTURES_MARK_PRICE_UPDATE"
    data: MarkPrice


class KlineUpdate(_EventEnvelope):
    type: Literal["FUTURES_KLINE_UPDATE"] = "FUTURES_KLINE_UPDATE"
    data: Kline


class OrderBookUpdate(_EventEnvelope):
    type: Literal["FUTURES_ORDERBOOK_UPDATE"] = "FUTURES_ORDERBOOK_UPDATE"
    data: OrderBook


Event = Annotated[
    PositionUpdate
    | OrderUpdate
    | TradeUpdate
    | BalanceUpdate
    | ChainUpdate
    | LifecycleEventUpdate
    | GinieStatusUpdate
    | SignalUpdate
    | CircuitBreakerUpdate
    | ModeSafetyUpdate
    | ModeAllocationUpdate
    | AutopilotRulesUpdate
    | PnlUpdate
    | PerformanceUpdate
    | StatsUpdate
    | SystemStatusUpdate
    | HealthUpdate
    | MarkPriceUpdate
    | KlineUpdate
    | OrderBookUpdate,
    Field(discriminator="type"),
]
"""Any of the twenty events, discriminated by `type`."""

EventData = (
    Position
    | Order
    | Trade
    | Balance
    | Chain
    | LifecycleEvent
    | GinieStatus
    | Signal
    | CircuitBreaker
    | ModeSafety
    | ModeAllocation
    | AutopilotRules
    | Pnl
    | Performance
    | Stats
    | SystemStatus
    | ApiHealth
    | MarkPrice
    | Kline
    | OrderBook
)

ENVELOPE_OF: dict[str, type[_EventEnvelope]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        PositionUpdate,
        OrderUpdate,
        TradeUpdate,
        BalanceUpdate,
        ChainUpdate,
        LifecycleEventUpdate,
        GinieStatusUpdate,
        SignalUpdate,
        CircuitBreakerUpdate,
        ModeSafetyUpdate,
        ModeAllocationUpdate,
        AutopilotRulesUpdate,
        PnlUpdate,
        PerformanceUpdate,
        StatsUpdate,
        SystemStatusUpdate,
        HealthUpdate,
        MarkPriceUpdate,
        KlineUpdate,
        OrderBookUpdate,
    )
}
"""Event type name to its envelope model."""

EVENT_TYPES: tuple[str, ...] = tuple(ENVELOPE_OF)
"""The twenty event type names, in the order of SPEC section 4."""

EVENT_TYPE_OF: dict[type[WireModel], str] = {
    env.model_fields["data"].annotation: name for name, env in ENVELOPE_OF.items()
}
"""Data model class to its event type name."""

DATA_MODEL_OF: dict[str, type[WireModel]] = {name: cls for cls, name in EVENT_TYPE_OF.items()}
"""Event type name to its data model class."""

MARKET_TYPES: frozenset[str] = frozenset(
    {"FUTURES_MARK_PRICE_UPDATE", "FUTURES_KLINE_UPDATE", "FUTURES_ORDERBOOK_UPDATE"}
)
"""Public market events: no `seq`, may be coalesced per symbol."""

USER_TYPES: frozenset[str] = frozenset(EVENT_TYPES) - MARKET_TYPES
"""Per-user events: numbered by `seq`, never coalesced, never dropped."""

KEY_FIELD: dict[str, str | None] = {
    "POSITION_UPDATE": "symbol",
    "ORDER_UPDATE": "order_id",
    "TRADE_UPDATE": "trade_id",
    "BALANCE_UPDATE": "asset",
    "CHAIN_UPDATE": "chain_id",
    "LIFECYCLE_EVENT": "id",
    "GINIE_STATUS_UPDATE": None,
    "SIGNAL_UPDATE": "signal_id",
    "CIRCUIT_BREAKER_UPDATE": None,
    "MODE_SAFETY_UPDATE": "mode",
    "MODE_ALLOCATION_UPDATE": "mode",
    "AUTOPILOT_RULES_UPDATE": None,
    "PNL_UPDATE": None,
    "PERFORMANCE_UPDATE": None,
    "STATS_UPDATE": None,
    "SYSTEM_STATUS_UPDATE": None,
    "HEALTH_UPDATE": None,
    "FUTURES_MARK_PRICE_UPDATE": "symbol",
    "FUTURES_KLINE_UPDATE": "symbol",
    "FUTURES_ORDERBOOK_UPDATE": "symbol",
}
"""The field that keys a collection topic's items; None for a singleton topic."""

SNAPSHOT_PATH: dict[str, str] = {
    "POSITION_UPDATE": "/api/futures/positions",
    "ORDER_UPDATE": "/api/futures/orders/all",
    "TRADE_UPDATE": "/api/futures/trades",
    "BALANCE_UPDATE": "/api/futures/balances",
    "CHAIN_UPDATE": "/api/futures/chains",
    "LIFECYCLE_EVENT": "/api/futures/trade-events",
    "GINIE_STATUS_UPDATE": "/api/ginie/status",
    "SIGNAL_UPDATE": "/api/signals",
    "CIRCUIT_BREAKER_UPDATE": "/api/circuit-breaker",
    "MODE_SAFETY_UPDATE": "/api/modes/safety",
    "MODE_ALLOCATION_UPDATE": "/api/modes/allocation",
    "AUTOPILOT_RULES_UPDATE": "/api/autopilot/rules",
    "PNL_UPDATE": "/api/pnl",
    "PERFORMANCE_UPDATE": "/api/performance",
    "STATS_UPDATE": "/api/stats",
    "SYSTEM_STATUS_UPDATE": "/api/system/status",
    "HEALTH_UPDATE": "/api/system/health",
}
"""REST snapshot path of each user topic. Market topics share `/api/market/{symbol}`."""
