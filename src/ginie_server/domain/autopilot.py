"""The Ginie autopilot of one user: rules, scans, signals and diagnostics.

A scan looks at every allowed symbol once its newest 1-minute candle has closed. For each mode
whose timeframe candle just closed (position first, then swing, then scalp) it applies the
signal rule of `signals.py`. A raised idea must then pass the gates, in this order, or it is
counted under that reason in `rejections_by_reason`: `rsi_filter` (from the rule itself),
`low_confidence`, `circuit_breaker`, `mode_paused` / `mode_blocked`, `symbol_busy` (a chain or
a pending signal on the symbol already), `max_open_positions`. At most one signal per symbol
comes out of a scan. A signal waits for approval until `signal_ttl_seconds` have passed, then
expires; with `auto_execute` the engine executes it at once.

Signals in memory: every pending one, and the newest `KEPT_SIGNALS` decided ones
(`retention.Retained`); older decided signals live on in the database only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ginie_protocol.events import (
    AutopilotRules,
    Decision,
    GinieStatus,
    Kline,
    Mode,
    Signal,
)
from ginie_server.domain.market import SYMBOL_SPECS, floor_to, round_to
from ginie_server.domain.retention import Retained
from ginie_server.domain.signals import PROFILES, Idea, ModeProfile, Verdict, evaluate

SCAN_ORDER: tuple[Mode, ...] = ("position", "swing", "scalp")
RECENT_DECISIONS = 10
KEPT_SIGNALS = 200
"""Decided signals kept in memory per user (pending ones are all kept)."""
LIVE_SIGNAL = frozenset({"pending", "approved"})
"""Statuses of a signal still waiting for its decision to be carried out."""
MIN_NOTIONAL = 5.0
"""The smallest order value in USDT the autopilot sends (Binance refuses smaller ones)."""


def default_rules(symbols: Sequence[str]) -> AutopilotRules:
    return AutopilotRules(
        min_confidence=0.6,
        max_open_positions=3,
        allowed_symbols=list(symbols),
        auto_execute=True,
        signal_ttl_seconds=300,
        risk_per_trade_pct=0.5,
        leverage=5,
        max_consecutive_losses=5,
        max_daily_loss=500.0,
        max_hourly_loss=250.0,
        cooldown_minutes=30.0,
        mode_allocation_pct={"scalp": 40.0, "swing": 35.0, "position": 25.0},
    )


class RulesError(ValueError):
    """New rules that do not fit; the message says why."""


def merge_rules(
    rules: AutopilotRules, changes: dict[str, Any], known_symbols: Sequence[str]
) -> AutopilotRules:
    """The rules with `changes` applied, checked as a whole."""
    if "allowed_symbols" in changes:
        symbols = [s.upper() for s in changes["allowed_symbols"]]
        unknown = sorted(set(symbols) - set(known_symbols))
        if unknown:
            raise RulesError(f"unknown symbols: {', '.join(unknown)}")
        changes = {**changes, "allowed_symbols": list(dict.fromkeys(symbols))}
    if "mode_allocation_pct" in changes:
        pct = {**rules.mode_allocation_pct, **changes["mode_allocation_pct"]}
        if any(v < 0 for v in pct.values()) or sum(pct.values()) > 100.0 + 1e-9:
            raise RulesError("mode allocations must be non-negative and add up to at most 100")
        changes = {**changes, "mode_allocation_pct": pct}
    return rules.model_copy(update=changes)


@dataclass(frozen=True, slots=True)
class Gates:
    """What the rest of the engine says about opening a new trade right now."""

    breaker_reason: str | None
    mode_status: dict[str, str]
    busy_symbols: frozenset[str]
    open_positions: int


@dataclass(frozen=True, slots=True)
class Sizing:
    """A signal's order quantity, or the reason it cannot be sized."""

    quantity: float
    reason: str | None = None


def size_position(
    idea_entry: float,
    idea_stop: float,
    equity: float,
    risk_pct: float,
    leverage: int,
    available_usd: float,
    qty_step: float,
) -> Sizing:
    """Risk `risk_pct` of equity between entry and stop, within the mode's free capital."""
    distance = abs(idea_entry - idea_stop)
    if distance <= 0 or idea_entry <= 0:
        return Sizing(0.0, "bad_levels")
    qty = equity * risk_pct / 100.0 / distance
    max_qty = available_usd * leverage / idea_entry
    qty = floor_to(min(qty, max_qty), qty_step)
    if qty * idea_entry < MIN_NOTIONAL:
        return Sizing(
            0.0, "allocation_exhausted" if max_qty * idea_entry < MIN_NOTIONAL else "size_too_small"
        )
    return Sizing(qty)


@dataclass(slots=True)
class Autopilot:
    """State of one user's autopilot. Methods mutate it and return what changed."""

    rules: AutopilotRules
    running: bool = True
    scans: int = 0
    last_scan_at: int | None = None
    next_scan_at: int | None = None
    signals_today: int = 0
    day_key: int = 0
    next_signal: int = 1
    recent: list[Decision] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=dict)
    signals: Retained[Signal] = field(default_factory=lambda: Retained(KEPT_SIGNALS))

    def status(self, open_positions: int, blocked_reason: str | None) -> GinieStatus:
        state: Literal["running", "stopped", "blocked"] = (
            "stopped" if not self.running else "blocked" if blocked_reason else "running"
        )
        return GinieStatus(
            running=self.running,
            state=state,
            scans=self.scans,
            last_scan_at=self.last_scan_at,
            next_scan_at=self.next_scan_at if self.running else None,
            symbols=list(self.rules.allowed_symbols),
            signals_today=self.signals_today,
            open_positions=open_positions,
            last_decision=self.recent[-1] if self.recent else None,
            recent_decisions=list(self.recent),
            rejections_by_reason=dict(self.rejections),
            blocked_reason=blocked_reason if self.running else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The autopilot's own state (its rules and signals are stored as their events)."""
        return {
            "running": self.running,
            "scans": self.scans,
            "last_scan_at": self.last_scan_at,
            "next_scan_at": self.next_scan_at,
            "signals_today": self.signals_today,
            "day_key": self.day_key,
            "next_signal": self.next_signal,
            "recent": [d.model_dump() for d in self.recent],
            "rejections": dict(self.rejections),
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        """Take back the state `to_dict` gave (rules and signals are loaded apart)."""
        self.running = data["running"]
        self.scans = data["scans"]
        self.last_scan_at = data["last_scan_at"]
        self.next_scan_at = data["next_scan_at"]
        self.signals_today = data["signals_today"]
        self.day_key = data["day_key"]
        self.next_signal = data["next_signal"]
        self.recent = [Decision.model_validate(d) for d in data["recent"]]
        self.rejections = dict(data["rejections"])

    def decide(self, symbol: str, action: str, reason: str, now: int) -> None:
        self.recent.append(Decision(symbol=symbol, action=action, reason=reason, time=now))
        del self.recent[:-RECENT_DECISIONS]

    def reject_count(self, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def scan(
        self,
        closed: Callable[[str], Sequence[Kline]],
        gates: Gates,
        now: int,
        next_scan_at: int | None,
        judge: Callable[[str, Sequence[Kline], ModeProfile], Verdict] = evaluate,
    ) -> list[Signal]:
        """Scan the allowed symbols; returns the new pending signals. `judge` applies the
        signal rule (callers that scan for many users may share one that caches)."""
        self.scans += 1
        self.last_scan_at = now
        self.next_scan_at = next_scan_at
        if now // 86_400_000 != self.day_key:
            self.day_key, self.signals_today = now // 86_400_000, 0
        raised: list[Signal] = []
        open_positions = gates.open_positions
        for symbol in self.rules.allowed_symbols:
            candles = closed(symbol)
            if not candles:
                continue
            minute = (candles[-1].close_time + 1) // 60_000
            idea: Idea | None = None
            reason = "no_cross"
            for mode in SCAN_ORDER:
                if minute % PROFILES[mode].minutes:
                    continue
                verdict = judge(symbol, candles, PROFILES[mode])
                if verdict.idea is None:
                    if verdict.reason == "rsi_filter":
                        self.reject_count("rsi_filter")
                        reason = f"{mode}: cross filtered by rsi"
                    continue
                idea = verdict.idea
                break
            if idea is None:
                self.decide(symbol, "hold", reason, now)
                continue
            blocked = self._gate(idea, gates, open_positions, symbol)
            if blocked is not None:
                self.reject_count(blocked)
                self.decide(symbol, "skip", f"{idea.mode} {idea.direction.lower()}: {blocked}", now)
                continue
            signal = self._new_signal(idea, now)
            raised.append(signal)
            open_positions += 1
            self.decide(
                symbol,
                "signal",
                f"{idea.mode} {idea.direction.lower()} confidence {idea.confidence:.2f}",
                now,
            )
        return raised

    def _gate(self, idea: Idea, gates: Gates, open_positions: int, symbol: str) -> str | None:
        if idea.confidence < self.rules.min_confidence:
            return "low_confidence"
        if gates.breaker_reason is not None:
            return "circuit_breaker"
        status = gates.mode_status.get(idea.mode, "active")
        if status != "active":
            return f"mode_{status}"
        if symbol in gates.busy_symbols or any(
            s.symbol == symbol for s in self.signals.live.values()
        ):
            return "symbol_busy"
        if open_positions >= self.rules.max_open_positions:
            return "max_open_positions"
        return None

    def _new_signal(self, idea: Idea, now: int) -> Signal:
        spec = SYMBOL_SPECS.get(idea.symbol)
        tick = spec.price_tick if spec else 1e-8
        signal = Signal(
            signal_id=f"S{self.next_signal}",
            symbol=idea.symbol,
            direction=idea.direction,
            mode=idea.mode,
            strategy=idea.strategy,
            confidence=idea.confidence,
            entry_price=idea.entry_price,
            take_profit=round_to(idea.take_profit, tick),
            stop_loss=round_to(idea.stop_loss, tick),
            status="pending",
            reason="waiting for approval" if not self.rules.auto_execute else "auto-execute",
            indicators=idea.indicators,
            created_at=now,
            expires_at=now + self.rules.signal_ttl_seconds * 1000,
        )
        self.next_signal += 1
        self.signals_today += 1
        self.put(signal)
        return signal

    def put(self, signal: Signal) -> None:
        """Store a signal's new state: pending ones all, decided ones the newest `KEPT_SIGNALS`."""
        self.signals.put(signal.signal_id, signal, done=signal.status not in LIVE_SIGNAL)

    def settle(
        self,
        signal: Signal,
        status: str,
        reason: str,
        now: int,
        chain_id: str | None = None,
    ) -> Signal:
        """Give a signal its decided status."""
        decided = signal.model_copy(
            update={"status": status, "reason": reason, "decided_at": now, "chain_id": chain_id}
        )
        self.put(decided)
        return decided

    def expire(self, now: int) -> list[Signal]:
        """Pending signals whose time has passed, now expired."""
        due = [
            s for s in self.signals.live.values() if s.status == "pending" and now >= s.expires_at
        ]
        if due:
            self.rejections["expired"] = self.rejections.get("expired", 0) + len(due)
        return [self.settle(s, "expired", "not approved in time", now) for s in due]
