"""The seam between the hub and the event sources.

A source (the trading engine) receives a `Publisher` when it starts and
calls it synchronously on the event loop. It offers the hub its REST snapshots and its command
handlers. The hub never knows what a position is; a source never knows what a socket is.

Consistency rule: a source never writes or commits on its own. It stages its state writes with
`Publisher.write` and its events with `Publisher.publish`; the hub's journal commits both in
one transaction before any of those events is sent. A snapshot provider serves what the
source last published, so the `seq` the hub attaches to a snapshot is exactly the last event
the snapshot includes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ginie_protocol.commands import CommandArgs
from ginie_protocol.events import Kline, MarkPrice, OrderBook, WireModel
from ginie_server.storage.db import StateWrite

MarketData = MarkPrice | Kline | OrderBook


class Publisher(Protocol):
    """What a source may publish to. Both calls are synchronous and never block on a client."""

    def publish(self, user: str, data: WireModel) -> None:
        """Publish a user event: numbered, written durably, then delivered to the user's sockets."""

    def publish_market(self, data: MarketData) -> None:
        """Publish a public market event: not numbered, may be coalesced per symbol."""

    def write(self, op: StateWrite) -> None:
        """Stage a state write: it commits in one transaction with the events published next."""


SnapshotProvider = Callable[[str], WireModel | list[Any]]
"""Given a user, the current payload of one topic: a model (singleton) or a list of models."""

MarketSnapshotProvider = Callable[[str], list[MarketData]]
"""Given a symbol, its current market data (mark price, recent klines, order book)."""

CommandHandler = Callable[[str, CommandArgs], Awaitable[dict[str, Any]]]
"""Given a user and validated arguments, run a command and return the ACK's `result`."""


class CommandError(Exception):
    """A command that could not be carried out; becomes an ACK with `ok: false`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Source(Protocol):
    """An event source the app starts, stops, and asks for snapshots and command handlers."""

    snapshots: dict[str, SnapshotProvider]
    """User topic (event type name) to its snapshot provider."""

    commands: dict[str, CommandHandler]
    """Command name to its handler."""

    market_snapshot: MarketSnapshotProvider | None
    """Market data of one symbol for `/api/market/{symbol}`, or None if this source has none."""

    async def start(self, publisher: Publisher) -> None:
        """Begin producing events."""

    async def stop(self) -> None:
        """Stop producing events; idempotent."""

    def attach_user(self, user: str) -> None:
        """Called when a user authenticates, so a source can set up that user's state."""
