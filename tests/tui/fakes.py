"""Test doubles for the console's UI tests: a feed with a fixed connection status whose events
the test delivers, and stores filled from the recorded dataset. The network feed itself is
tested against a real server in test_live.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

from ginie_protocol import SPECS, Ack, Topic
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import CommandRefused, FeedListener
from ginie_tui.store import Store
from tests.tui.dataset import EPOCH, T0, market_answer, market_events, user_events

LIVE = ConnectionStatus(ConnState.LIVE, latency_ms=3.4, last_sync_at=T0 - 1_000)
RECONNECTING = ConnectionStatus(
    ConnState.RECONNECTING, attempt=3, next_retry_at=T0 + 4_000, last_sync_at=T0 - 3_000
)
POLLING = ConnectionStatus(
    ConnState.POLLING,
    attempt=7,
    next_retry_at=T0 + 20_000,
    last_sync_at=T0 - 12_000,
    next_poll_at=T0 + 48_000,
)
OFFLINE = ConnectionStatus(ConnState.OFFLINE, detail="the server refused the token (HTTP 401)")
STALE = ConnectionStatus(ConnState.STALE, latency_ms=3.4, last_sync_at=T0 - 35_000)


class RecordedFeed:
    """A FeedPort with a fixed status. Commands are recorded and answered `ok` (or as
    `answers` says); events reach
    the store only when the test calls `deliver`, as they would from the server. A symbol the
    console shows gets the dataset's `/api/market/{symbol}` answer once, as from the server."""

    def __init__(self, status: ConnectionStatus = LIVE) -> None:
        self.fixed = status
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.store: Store | None = None
        self.listener: FeedListener | None = None
        self.markets_shown: list[str] = []
        self._markets_fetched: set[str] = set()
        self._ids = itertools.count(1)
        self.answers: dict[str, Ack] = {}
        """The ACK to answer a command with, by name, instead of `ok`."""

    def status(self) -> ConnectionStatus:
        return self.fixed

    async def run(self, store: Store, listener: FeedListener) -> None:
        self.store = store
        self.listener = listener
        self._fetch_markets()
        await asyncio.Event().wait()

    def show_market(self, symbol: str) -> None:
        self.markets_shown.append(symbol)
        self._fetch_markets()

    def _fetch_markets(self) -> None:
        if self.store is None or self.listener is None:
            return
        for symbol in dict.fromkeys(self.markets_shown):
            if symbol not in self._markets_fetched:
                self._markets_fetched.add(symbol)
                changes = self.store.apply_market(market_answer(symbol), T0 - 2_000)
                if changes:
                    self.listener.feed_changes(changes)

    async def command(self, name: str, args: Mapping[str, Any]) -> Ack:
        if not self.fixed.live:
            raise CommandRefused(f"read-only while {self.fixed.state}")
        self.sent.append((name, dict(args)))
        answer = self.answers.get(name)
        if answer is not None:
            return answer
        return Ack(id=f"c-{next(self._ids)}", ok=True, result={})

    def deliver(self, event: Any, now_ms: int = T0) -> None:
        assert self.store is not None and self.listener is not None, "the feed is not running"
        applied = self.store.apply_event(event, now_ms)
        assert applied.change is not None, f"{event.type} seq {event.seq}: {applied.outcome}"
        self.listener.feed_changes([applied.change])


def live_store(at_ms: int = T0 - 2_000) -> Store:
    """The recorded dataset applied as live events."""
    store = Store()
    for event in user_events() + market_events():
        store.apply_event(event, at_ms, "live")
    return store


def polled_store(at_ms: int = T0 - 12_000) -> Store:
    """The recorded dataset as one REST snapshot (what a fallback poll brings)."""
    events = user_events()
    data: dict[str, Any] = {}
    for event in events:
        if SPECS[event.type].key is None:
            data[event.type] = event.data.model_dump()
        else:
            data.setdefault(event.type, []).append(event.data.model_dump())
    data[Topic.LIFECYCLE_EVENT].reverse()
    store = Store()
    store.apply_snapshot(EPOCH, len(events), data, at_ms)
    for event in market_events():
        store.apply_event(event, at_ms - 30_000, "live")
    return store
