"""A recorded, deterministic dataset of protocol models for the console's tests and snapshots."""

from __future__ import annotations

from typing import Any

from ginie_protocol import make_event
from ginie_protocol.events import (
    ApiHealth,
    AutopilotRules,
    Chain,
    CircuitBreaker,
    ComponentHealth,
    Decision,
    GinieStatus,
    Kline,
    LifecycleEvent,
    MarkPrice,
    ModeAllocation,
    ModeSafety,
    Order,
    OrderBook,
    Performance,
    PerformanceRow,
    Pnl,
    Position,
    Signal,
    Stats,
    SystemStatus,
    Trade,
    WireModel,
)

T0 = 1_764_100_000_000
"""The dataset's 'now'; every time in it is relative to this."""
EPOCH = "ep-fixture"


def user_models() -> list[WireModel]:
    """User data in the order it happened; numbering them from 1 gives their seq."""
    minute = 60_000
    models: list[WireModel] = [
        AutopilotRules(
            min_confidence=0.65,
            max_open_positions=3,
            allowed_symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"],
            auto_execute=False,
            signal_ttl_seconds=300,
            risk_per_trade_pct=1.0,
            leverage=5,
            max_consecutive_losses=3,
            max_daily_loss=250.0,
            max_hourly_loss=100.0,
            cooldown_minutes=30.0,
            mode_allocation_pct={"scalp": 30.0, "swing": 50.0, "position": 20.0},
        ),
        SystemStatus(
            exchange=ComponentHealth(status="ok", detail="paper", since=T0 - 60 * minute),
            database=ComponentHealth(status="ok", detail="sqlite wal", since=T0 - 60 * minute),
            engine=ComponentHealth(status="degraded", detail="1 scan late", since=T0 - minute),
            started_at=T0 - 60 * minute,
            version="0.1.0",
        ),
        ApiHealth(
            exchange="paper",
            status="ok",
            latency_ms=3.2,
            weight_used=120,
            weight_limit=2400,
            updated_at=T0 - 5_000,
        ),
        CircuitBreaker(
            state="ok",
            consecutive_losses=1,
            daily_loss=42.5,
            hourly_loss=12.0,
            max_consecutive_losses=3,
            max_daily_loss=250.0,
            max_hourly_loss=100.0,
            cooldown_minutes=30.0,
        ),
    ]
    for mode, status, used in (("scalp", "active", 310.0), ("swing", "paused", 0.0)):
        models.append(
            ModeSafety(
                mode=mode,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                reason="2 losses in a row" if status == "paused" else None,
                paused_until=T0 + 20 * minute if status == "paused" else None,
                consecutive_losses=2 if status == "paused" else 0,
                loss_today=35.0 if status == "paused" else 7.5,
                max_consecutive_losses=2,
                max_loss_today=100.0,
            )
        )
        models.append(
            ModeAllocation(
                mode=mode,  # type: ignore[arg-type]
                allocated_pct=30.0 if mode == "scalp" else 50.0,
                allocated_usd=3000.0 if mode == "scalp" else 5000.0,
                used_usd=used,
                available_usd=(3000.0 if mode == "scalp" else 5000.0) - used,
                open_positions=1 if used else 0,
            )
        )
    models += [
        Signal(
            signal_id="sig-1",
            symbol="BTCUSDT",
            direction="LONG",
            mode="scalp",
            strategy="ema_cross",
            confidence=0.78,
            entry_price=65000.0,
            take_profit=65650.0,
            stop_loss=64675.0,
            status="executed",
            reason="EMA 9 crossed EMA 21",
            chain_id="ch-1",
            indicators={"rsi": 58.2},
            created_at=T0 - 12 * minute,
            expires_at=T0 - 7 * minute,
            decided_at=T0 - 11 * minute,
        ),
        Signal(
            signal_id="sig-2",
            symbol="ETHUSDT",
            direction="SHORT",
            mode="swing",
            strategy="rsi_revert",
            confidence=0.71,
            entry_price=3400.0,
            take_profit=3332.0,
            stop_loss=3434.0,
            status="pending",
            reason="RSI 74 overbought",
            created_at=T0 - minute,
            expires_at=T0 + 4 * minute,
        ),
        Chain(
            chain_id="ch-1",
            symbol="BTCUSDT",
            direction="LONG",
            mode="scalp",
            source="autopilot",
            strategy="ema_cross",
            signal_id="sig-1",
            status="open",
            entry_client_order_id="g-ch-1-entry",
            take_profit_client_order_ids=["g-ch-1-tp1"],
            stop_loss_client_order_id="g-ch-1-sl",
            quantity=0.01,
            remaining_qty=0.01,
            entry_price=65010.0,
            take_profit_prices=[65650.0],
            stop_loss_price=64675.0,
            opened_at=T0 - 11 * minute,
        ),
        Order(
            order_id="1001",
            client_order_id="g-ch-1-entry",
            chain_id="ch-1",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            status="FILLED",
            quantity=0.01,
            filled_qty=0.01,
            avg_price=65010.0,
            created_at=T0 - 11 * minute,
            updated_at=T0 - 11 * minute,
        ),
        Order(
            order_id="1002",
            client_order_id="g-ch-1-sl",
            chain_id="ch-1",
            symbol="BTCUSDT",
            side="SELL",
            type="STOP_MARKET",
            status="NEW",
            stop_price=64675.0,
            quantity=0.01,
            reduce_only=True,
            created_at=T0 - 11 * minute,
            updated_at=T0 - 11 * minute,
        ),
        Trade(
            trade_id="t-1",
            order_id="1001",
            client_order_id="g-ch-1-entry",
            chain_id="ch-1",
            symbol="BTCUSDT",
            side="BUY",
            price=65010.0,
            quantity=0.01,
            fee=0.26,
            time=T0 - 11 * minute,
        ),
        Position(
            symbol="BTCUSDT",
            size=0.01,
            entry_price=65010.0,
            mark_price=65120.0,
            unrealized_pnl=1.1,
            leverage=5,
            liquidation_price=52300.0,
            margin=130.0,
            updated_at=T0 - 30_000,
        ),
    ]
    for i, (step, message) in enumerate(
        (
            ("signal", "signal sig-1 raised"),
            ("entry_placed", "entry order placed"),
            ("entry_filled", "entry filled at 65010"),
            ("sl_placed", "stop-loss placed at 64675"),
        ),
        start=1,
    ):
        models.append(
            LifecycleEvent(
                id=i,
                chain_id="ch-1",
                symbol="BTCUSDT",
                step=step,
                message=message,
                time=T0 - (12 - i) * minute,
            )
        )
    decisions = [
        Decision(symbol="BTCUSDT", action="hold", reason="position open", time=T0 - 20_000),
        Decision(symbol="ETHUSDT", action="signal", reason="RSI 74", time=T0 - 60_000),
        Decision(symbol="SOLUSDT", action="skip", reason="low volume", time=T0 - 61_000),
    ]
    models += [
        GinieStatus(
            running=True,
            state="running",
            scans=148,
            last_scan_at=T0 - 20_000,
            next_scan_at=T0 + 40_000,
            symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"],
            signals_today=7,
            open_positions=1,
            last_decision=decisions[0],
            recent_decisions=decisions,
            rejections_by_reason={"low confidence": 12, "max positions": 2},
        ),
        Pnl(
            realized_today=84.2,
            realized_total=512.75,
            unrealized=1.1,
            fees_total=18.4,
            equity=10_513.85,
            wins=9,
            losses=4,
            win_rate=0.692,
            by_symbol={"BTCUSDT": 402.1, "ETHUSDT": 110.65},
            by_mode={"scalp": 300.0, "swing": 212.75},
            by_strategy={"ema_cross": 390.0, "rsi_revert": 122.75},
            equity_curve=[10_000 + 40 * i + (25 if i % 3 else -30) for i in range(14)],
        ),
        Performance(
            by_symbol=[
                PerformanceRow(
                    key="BTCUSDT",
                    trades=8,
                    wins=6,
                    losses=2,
                    win_rate=0.75,
                    pnl=402.1,
                    avg_pnl=50.26,
                ),
                PerformanceRow(
                    key="ETHUSDT",
                    trades=5,
                    wins=3,
                    losses=2,
                    win_rate=0.6,
                    pnl=110.65,
                    avg_pnl=22.13,
                ),
            ],
            by_strategy=[
                PerformanceRow(
                    key="ema_cross",
                    trades=9,
                    wins=7,
                    losses=2,
                    win_rate=0.778,
                    pnl=390.0,
                    avg_pnl=43.33,
                ),
                PerformanceRow(
                    key="rsi_revert",
                    trades=4,
                    wins=2,
                    losses=2,
                    win_rate=0.5,
                    pnl=122.75,
                    avg_pnl=30.69,
                ),
            ],
        ),
        Stats(
            total_trades=13, trades_today=3, by_source={"autopilot": 11, "manual": 2}, open_chains=1
        ),
    ]
    return models


MARKET_BASE = {"BTCUSDT": 65000.0, "ETHUSDT": 3400.0}
HISTORY = 60
"""Candles `/api/market/{symbol}` answers with: the closed ones and the forming one."""


def kline_history(symbol: str) -> list[Kline]:
    """A symbol's recent 1m candles, oldest first; the last one is still forming."""
    base = MARKET_BASE[symbol]
    step = base / 2000
    candles: list[Kline] = []
    for i in range(HISTORY):
        close = base + step * ((i * 7) % 11 - 5 + 3 * ((i // 12) % 3 - 1))
        candles.append(
            Kline(
                symbol=symbol,
                open_time=T0 - (HISTORY - i) * 60_000,
                close_time=T0 - (HISTORY - 1 - i) * 60_000 - 1,
                open=close - step,
                high=close + step,
                low=close - 2 * step,
                close=close,
                volume=10.0 + i,
                closed=i < HISTORY - 1,
            )
        )
    return candles


def market_models() -> list[WireModel]:
    """Live market data for two symbols: the forming candle, the mark price, an order book."""
    models: list[WireModel] = []
    for symbol, base in MARKET_BASE.items():
        step = base / 2000
        forming = kline_history(symbol)[-1]
        models.append(forming.model_copy(update={"close": forming.close + step, "volume": 80.0}))
        models.append(
            MarkPrice(
                symbol=symbol,
                mark_price=base + 120 * step / 32.5,
                index_price=base + 100 * step / 32.5,
                funding_rate=0.0001,
                next_funding_time=T0 + 3_600_000,
                time=T0 - 1_000,
            )
        )
        models.append(
            OrderBook(
                symbol=symbol,
                bids=[(base - step * (i + 1), 0.5 + i) for i in range(5)],
                asks=[(base + step * (i + 1), 0.4 + i) for i in range(5)],
                time=T0 - 1_000,
            )
        )
    return models


def market_answer(symbol: str) -> dict[str, Any]:
    """The `data` of `/api/market/{symbol}` for the dataset: the candle history, and a mark
    price and order book a little older than the live ones."""
    live = [m for m in market_models() if getattr(m, "symbol", None) == symbol]
    mark = next(m for m in live if isinstance(m, MarkPrice))
    book = next(m for m in live if isinstance(m, OrderBook))
    return {
        "FUTURES_KLINE_UPDATE": [k.model_dump() for k in kline_history(symbol)],
        "FUTURES_MARK_PRICE_UPDATE": mark.model_copy(update={"time": T0 - 5_000}).model_dump(),
        "FUTURES_ORDERBOOK_UPDATE": book.model_copy(update={"time": T0 - 5_000}).model_dump(),
    }


def user_events() -> list[Any]:
    """The user models as events numbered 1..N in the fixture epoch."""
    return [
        make_event(m, ts=T0 - 1_000, seq=i, epoch=EPOCH) for i, m in enumerate(user_models(), 1)
    ]


def market_events() -> list[Any]:
    return [make_event(m, ts=T0 - 1_000) for m in market_models()]
