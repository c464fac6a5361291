"""Autopilot rules, the circuit breaker's limits among them; changed with autopilot.set_rules."""

from __future__ import annotations

from ginie_protocol.events import AutopilotRules
from ginie_tui.widgets.base import ModelPanel


class RulesPanel(ModelPanel[AutopilotRules]):
    TITLE = "Rules"
    MODEL = AutopilotRules
    EMPTY = "no rules yet"
    BODY_ID = "rules-body"

    def describe(self, rules: AutopilotRules) -> str:
        allocation = " ".join(f"{m} {p:g}%" for m, p in rules.mode_allocation_pct.items())
        return "\n".join(
            [
                f"Auto-execute {'[green]on[/]' if rules.auto_execute else '[yellow]off[/]'}"
                f"   min confidence {rules.min_confidence:.2f}",
                f"Max positions {rules.max_open_positions}   leverage {rules.leverage}x"
                f"   risk {rules.risk_per_trade_pct:g}%/trade",
                f"Signal TTL {rules.signal_ttl_seconds} s",
                f"Symbols {', '.join(rules.allowed_symbols) or 'any'}",
                f"Breaker: {rules.max_consecutive_losses} losses, "
                f"{rules.max_daily_loss:g}/day, {rules.max_hourly_loss:g}/h, "
                f"cool {rules.cooldown_minutes:g} min",
                f"Allocation {allocation}",
            ]
        )
