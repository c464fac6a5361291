"""Indicators and the signal rule the autopilot trades by.

The rule, per mode and symbol, on closed candles of the mode's timeframe (1-minute candles
grouped into 1, 5 or 15 minutes for scalp, swing and position):

1. Trend change: EMA(9) crosses EMA(21) on the last closed candle. Up is LONG, down SHORT.
2. Momentum filter: RSI(14) must agree without being stretched: LONG needs 50 < RSI < 75,
   SHORT needs 25 < RSI < 50. A cross that fails it is rejected as `rsi_filter`.
3. Exits from volatility: with ATR(14), the take-profit lies `tp_atr` ATRs beyond the entry
   and the stop-loss `sl_atr` ATRs against it (scalp 1.5/1.0, swing 2.0/1.2, position 3.0/1.5).
4. Confidence in [0, 1]: 0.45, plus up to 0.25 for the EMA gap in ATRs (full at 0.2 ATR),
   plus up to 0.2 for RSI's distance from 50 (full at 20), plus 0.1 when the last candle's
   body points the signal's way.

The entry price is the last close; the engine enters at market.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from ginie_protocol.events import Kline, Mode

Direction = Literal["LONG", "SHORT"]

EMA_FAST = 9
EMA_SLOW = 21
RSI_PERIOD = 14
ATR_PERIOD = 14
WINDOW = 120
"""Candles of the mode's timeframe the rule reads: enough for the smoothed indicators to settle."""


@dataclass(frozen=True, slots=True)
class ModeProfile:
    """How one trading mode reads the market."""

    mode: Mode
    minutes: int
    tp_atr: float
    sl_atr: float

    @property
    def strategy(self) -> str:
        return f"ema{EMA_FAST}x{EMA_SLOW}-rsi-{self.minutes}m"


PROFILES: dict[Mode, ModeProfile] = {
    "scalp": ModeProfile("scalp", 1, 1.5, 1.0),
    "swing": ModeProfile("swing", 5, 2.0, 1.2),
    "position": ModeProfile("position", 15, 3.0, 1.5),
}


@dataclass(frozen=True, slots=True)
class Idea:
    """A signal the rule raised: direction, exits, confidence and the indicator values."""

    symbol: str
    mode: Mode
    strategy: str
    direction: Direction
    confidence: float
    entry_price: float
    take_profit: float
    stop_loss: float
    indicators: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's answer for one symbol and mode: an idea, or the reason there is none."""

    idea: Idea | None
    reason: str


def ema_series(values: Sequence[float], period: int) -> list[float]:
    """Exponential moving average, seeded with the simple average of the first `period`."""
    if len(values) < period:
        return []
    k = 2.0 / (period + 1)
    current = sum(values[:period]) / period
    out = [current]
    for v in values[period:]:
        current = v * k + current * (1 - k)
        out.append(current)
    return out


def rsi(closes: Sequence[float], period: int = RSI_PERIOD) -> float | None:
    """Wilder's relative strength index of the last close, or None without enough data."""
    if len(closes) <= period:
        return None
    moves = [b - a for a, b in pairwise(closes)]
    avg_gain = sum(max(m, 0.0) for m in moves[:period]) / period
    avg_loss = sum(max(-m, 0.0) for m in moves[:period]) / period
    for m in moves[period:]:
        avg_gain = (avg_gain * (period - 1) + max(m, 0.0)) / period
        avg_loss = (avg_loss * (period - 1) + max(-m, 0.0)) / period
    if avg_loss == 0:
        return 100.0 if avg_gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def atr(candles: Sequence[Kline], period: int = ATR_PERIOD) -> float | None:
    """Wilder's average true range of the last candle, or None without enough data."""
    if len(candles) <= period:
        return None
    trs = [
        max(c.high - c.low, abs(c.high - p.close), abs(c.low - p.close))
        for p, c in pairwise(candles)
    ]
    value = sum(trs[:period]) / period
    for tr in trs[period:]:
        value = (value * (period - 1) + tr) / period
    return value


def group(candles: Sequence[Kline], minutes: int) -> list[Kline]:
    """Closed 1-minute candles grouped into complete `minutes` candles, aligned to the clock."""
    if minutes == 1:
        return list(candles)
    span = minutes * 60_000
    out: list[Kline] = []
    bucket: list[Kline] = []
    for c in candles:
        if bucket and c.open_time // span != bucket[0].open_time // span:
            if len(bucket) == minutes:
                out.append(_merge(bucket, span))
            bucket = []
        bucket.append(c)
    if len(bucket) == minutes:
        out.append(_merge(bucket, span))
    return out


def _merge(bucket: list[Kline], span: int) -> Kline:
    start = bucket[0].open_time - bucket[0].open_time % span
    return Kline(
        symbol=bucket[0].symbol,
        interval=f"{span // 60_000}m",
        open_time=start,
        close_time=start + span - 1,
        open=bucket[0].open,
        high=max(c.high for c in bucket),
        low=min(c.low for c in bucket),
        close=bucket[-1].close,
        volume=sum(c.volume for c in bucket),
        closed=True,
    )


def evaluate(symbol: str, closed_1m: Sequence[Kline], profile: ModeProfile) -> Verdict:
    """Apply the rule to `symbol`'s closed 1-minute candles for one mode."""
    candles = group(closed_1m[-profile.minutes * WINDOW :], profile.minutes)
    closes = [c.close for c in candles]
    fast = ema_series(closes, EMA_FAST)
    slow = ema_series(closes, EMA_SLOW)
    strength = rsi(closes)
    vol = atr(candles)
    if len(slow) < 2 or strength is None or vol is None or vol <= 0:
        return Verdict(None, "not_enough_history")
    f_now, f_prev = fast[-1], fast[-2]
    s_now, s_prev = slow[-1], slow[-2]
    if f_prev <= s_prev and f_now > s_now:
        direction: Direction = "LONG"
    elif f_prev >= s_prev and f_now < s_now:
        direction = "SHORT"
    else:
        return Verdict(None, "no_cross")
    if direction == "LONG" and not 50 < strength < 75:
        return Verdict(None, "rsi_filter")
    if direction == "SHORT" and not 25 < strength < 50:
        return Verdict(None, "rsi_filter")
    sign = 1.0 if direction == "LONG" else -1.0
    last = candles[-1]
    gap_score = min(1.0, abs(f_now - s_now) / (0.2 * vol))
    rsi_score = min(1.0, abs(strength - 50.0) / 20.0)
    body_score = 1.0 if (last.close - last.open) * sign > 0 else 0.0
    confidence = round(min(1.0, 0.45 + 0.25 * gap_score + 0.2 * rsi_score + 0.1 * body_score), 3)
    entry = last.close
    idea = Idea(
        symbol=symbol,
        mode=profile.mode,
        strategy=profile.strategy,
        direction=direction,
        confidence=confidence,
        entry_price=entry,
        take_profit=entry + sign * profile.tp_atr * vol,
        stop_loss=entry - sign * profile.sl_atr * vol,
        indicators={
            "ema_fast": round(f_now, 6),
            "ema_slow": round(s_now, 6),
            "rsi": round(strength, 2),
            "atr": round(vol, 6),
        },
    )
    return Verdict(idea, f"ema cross {direction.lower()}, rsi {strength:.1f}")
