"""The per-user fan-out a hub does for each event, for the baselines built on other frameworks.

Per user event, as Ginie's hub does it: the next `seq` of the user, the envelope encoded once
with the project's codec, an insert of that frame into the same SQLite event log, and a flush
scheduled with `loop.call_soon` that commits the whole batch once and only then hands each frame
to the user's connections whose topic filter accepts it. Market events: encoded once, filtered
per connection, sent at once (no coalescing: at the benchmark's 2 ticks/s per symbol Ginie's
10/s coalescing never holds a frame back). The transport is left to each framework.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmarks.servers.control import now_ms
from ginie_protocol import encode, make_event
from ginie_protocol.events import LifecycleEvent, MarkPrice
from ginie_server.storage.db import open_database, read_epoch
from ginie_server.storage.event_log import EventLog

Conn = TypeVar("Conn")


@dataclass
class Subscriber(Generic[Conn]):
    """One connection of a user and what it subscribed to (`None` topics: not yet)."""

    user: str
    conn: Conn
    topics: frozenset[str] | None = None
    symbols: frozenset[str] | None = None

    def wants(self, topic: str, symbol: str | None = None) -> bool:
        if self.topics is None or ("*" not in self.topics and topic not in self.topics):
            return False
        return self.symbols is None or symbol is None or symbol in self.symbols


@dataclass
class HubCore(Generic[Conn]):
    """Subscribers by user, seq per user, and the durable event log."""

    db: sqlite3.Connection
    subscribers: dict[str, list[Subscriber[Conn]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    seq: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deliver: Callable[[list[tuple[str, list[Conn]]]], None] = lambda batch: None
    """The transport: called after each commit with (frame, connections) pairs, in order."""

    def __post_init__(self) -> None:
        self.epoch = read_epoch(self.db)
        self.log = EventLog(self.db)
        self.pending: list[tuple[str, str]] = []
        self.flush_handle: asyncio.Handle | None = None

    @classmethod
    def open(
        cls, db_path: Path, deliver: Callable[[list[tuple[str, list[Conn]]]], None]
    ) -> HubCore[Conn]:
        return cls(open_database(db_path), deliver=deliver)

    def add(self, user: str, conn: Conn) -> Subscriber[Conn]:
        subscriber = Subscriber(user, conn)
        self.subscribers[user].append(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber[Conn]) -> None:
        self.subscribers[subscriber.user].remove(subscriber)

    def subscribed(self) -> int:
        return sum(1 for subs in self.subscribers.values() for s in subs if s.topics is not None)

    def publish_user(self, user: str, data: dict[str, Any]) -> None:
        """Number, encode and log one user event; it is delivered after the batch commits."""
        seq = self.seq[user] + 1
        self.seq[user] = seq
        ts = now_ms()
        frame = encode(make_event(LifecycleEvent(**data), ts, seq, self.epoch))
        self.log.append(user, seq, "LIFECYCLE_EVENT", data["symbol"], ts, frame)
        self.pending.append((user, frame))
        if self.flush_handle is None:
            self.flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Commit the batch, then deliver each frame to its user's accepting connections."""
        self.flush_handle = None
        self.db.commit()
        pending, self.pending = self.pending, []
        self.deliver(
            [
                (frame, [s.conn for s in self.subscribers[user] if s.wants("LIFECYCLE_EVENT")])
                for user, frame in pending
            ]
        )

    def market_frame(self, data: dict[str, Any]) -> tuple[str, list[Conn]]:
        """Encode one market event; the frame and the connections whose filter lets it pass."""
        frame = encode(make_event(MarkPrice(**data), now_ms()))
        symbol = data["symbol"]
        targets = [
            s.conn
            for subs in self.subscribers.values()
            for s in subs
            if s.wants("FUTURES_MARK_PRICE_UPDATE", symbol)
        ]
        return frame, targets
