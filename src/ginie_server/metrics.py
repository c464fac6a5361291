"""Per-user counters, served at `/api/metrics`. In memory; they restart with the server."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class UserMetrics:
    """One user's counters."""

    rest_calls: Counter[str] = field(default_factory=Counter)
    ws_connections: int = 0
    ws_open: int = 0
    events_published: int = 0
    events_sent: int = 0
    market_sent: int = 0
    replayed: int = 0
    resyncs: int = 0
    slow_consumer_closes: int = 0
    commands: int = 0
    """Commands run (refused ones not included)."""
    commands_refused: int = 0
    """Commands refused as `rate_limited`, over the connection's command budget."""
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rest_calls": dict(sorted(self.rest_calls.items())),
            "ws_connections": self.ws_connections,
            "ws_open": self.ws_open,
            "events_published": self.events_published,
            "events_sent": self.events_sent,
            "market_sent": self.market_sent,
            "replayed": self.replayed,
            "resyncs": self.resyncs,
            "slow_consumer_closes": self.slow_consumer_closes,
            "commands": self.commands,
            "commands_refused": self.commands_refused,
            "errors": self.errors,
        }


class MetricsBook:
    """Every user's counters, made on first use."""

    def __init__(self) -> None:
        self._by_user: dict[str, UserMetrics] = {}

    def of(self, user: str) -> UserMetrics:
        found = self._by_user.get(user)
        if found is None:
            found = self._by_user[user] = UserMetrics()
        return found
