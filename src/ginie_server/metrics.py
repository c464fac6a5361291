"""Per-user counters, served at `/api/metrics`, and the node's totals with its journal commit
times (`/api/metrics?format=prometheus`). In memory; they restart with the server."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds (seconds) of the journal commit-time histogram."""


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

    def add(self, other: UserMetrics) -> None:
        """Add `other`'s counts to these."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, item.name, mine + theirs)


@dataclass(slots=True)
class Histogram:
    """Counts of observations by upper bound (`COMMIT_BUCKETS`, then +Inf), and their sum."""

    bounds: tuple[float, ...] = COMMIT_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class MetricsBook:
    """Every user's counters, made on first use."""

    def __init__(self) -> None:
        self._by_user: dict[str, UserMetrics] = {}

    def total(self) -> UserMetrics:
        """Every user's counters added up: the node's."""
        node = UserMetrics()
        for one in self._by_user.values():
            node.add(one)
        return node

    def of(self, user: str) -> UserMetrics:
        found = self._by_user.get(user)
        if found is None:
            found = self._by_user[user] = UserMetrics()
        return found
