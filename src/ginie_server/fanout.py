"""Fan-out: the connections of each user, their filters, and the byte bound on what they owe.

`deliver(committed)` hands each committed frame (the same bytes for everyone) to every
subscribed connection of its user whose topic and symbol filters accept it, all of one
connection's frames of a commit in one `send_frames` call (one socket write).

Limits, stated plainly:

- A connection is an abstract `Connection` whose `send_frame` never blocks. Before handing it
  frames, fan-out checks that its unsent bytes would stay within `max_buffer_bytes`; if not, it
  closes the connection with 1013 instead and the client resumes from its last `seq`. So a
  connection's unsent data never passes the bound, and no user event is dropped for a
  connection that stays open.
- A replay may take a connection past the bound by the replay's own size: that allowance
  shrinks as the replay's bytes reach the network, and is gone once they all have.
- Market frames are coalesced per connection (`MarketThrottle`) and share the same bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from ginie_protocol.events import Topic
from ginie_server.config import Limits
from ginie_server.journal import Committed
from ginie_server.market_throttle import MarketKey, MarketThrottle
from ginie_server.metrics import UserMetrics

log = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 1013
"""WebSocket close code "try again later": the connection fell too far behind."""


class Connection(Protocol):
    """What fan-out needs of a client connection; the WebSocket door implements it."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one UTF-8 JSON text frame; never blocks."""

    def send_frames(self, frames: list[bytes]) -> None:
        """Queue several frames in order, as one write where possible; never blocks."""

    def buffered_bytes(self) -> int:
        """Bytes handed to `send_frame` that have not reached the network yet."""

    def close(self, code: int, reason: str) -> None:
        """Start closing; never blocks. Frames queued afterwards are discarded."""


class SubscriptionError(ValueError):
    """A subscribe request that cannot be accepted (unknown topic); the text says why."""


@dataclass(slots=True)
class _Allowance:
    """Room past the bound for a replay's bytes while they are still unsent."""

    size: int = 0
    """The replay's bytes."""
    buffered_after: int = 0
    """The connection's unsent bytes right after the replay was queued."""
    queued_since: int = 0
    """Bytes queued on the connection since then."""

    def remaining(self, buffered_now: int) -> int:
        """Replay bytes not yet on the network (what left the buffer went oldest first)."""
        if not self.size:
            return 0
        drained = self.buffered_after + self.queued_since - buffered_now
        left = self.size - drained
        if left <= 0:
            self.size = 0
            return 0
        return left


@dataclass(slots=True, eq=False)
class Client:
    """Fan-out's record of one connection: its user, filters, allowance and market state."""

    conn: Connection
    user: str
    metrics: UserMetrics
    market: MarketThrottle = field(init=False)
    subscribed: bool = False
    topics: frozenset[str] | None = None
    """None means every topic."""
    symbols: frozenset[str] | None = None
    """None means every symbol; events without a symbol always pass."""
    allowance: _Allowance = field(default_factory=_Allowance)

    def wants(self, event_type: str, symbol: str | None) -> bool:
        return (self.topics is None or event_type in self.topics) and (
            symbol is None or self.symbols is None or symbol in self.symbols
        )


class FanOut:
    """Connections by user, and delivery to them within the byte bound."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.clients: dict[Connection, Client] = {}
        self._by_user: dict[str, dict[Connection, Client]] = {}

    def add(self, conn: Connection, user: str, metrics: UserMetrics) -> Client:
        """Register a connection (not yet subscribed)."""
        client = Client(conn, user, metrics)
        client.market = MarketThrottle(
            self._limits.market_rate_hz, lambda frame: self._send_market(client, frame)
        )
        self.clients[conn] = client
        self._by_user.setdefault(user, {})[conn] = client
        metrics.ws_connections += 1
        metrics.ws_open += 1
        return client

    def remove(self, conn: Connection) -> None:
        """Forget a connection; idempotent."""
        client = self.clients.pop(conn, None)
        if client is None:
            return
        client.metrics.ws_open -= 1
        client.market.stop()
        peers = self._by_user.get(client.user)
        if peers is not None:
            peers.pop(conn, None)
            if not peers:
                del self._by_user[client.user]

    def set_filters(self, client: Client, topics: list[str], symbols: list[str] | None) -> None:
        """Replace a connection's filters; raises SubscriptionError for an unknown topic."""
        client.topics = parse_topics(topics)
        client.symbols = None if symbols is None else frozenset(symbols)
        client.market.keep_only(client.wants)

    def replay(self, client: Client, frames: list[bytes]) -> None:
        """Queue a resume's frames, whatever the bound; they are the allowance past it."""
        for frame in frames:
            client.conn.send_frame(frame)
        size = sum(len(frame) for frame in frames)
        client.allowance = _Allowance(size, client.conn.buffered_bytes(), 0)
        client.metrics.replayed += len(frames)
        client.metrics.events_sent += len(frames)

    def deliver(self, committed: Committed) -> None:
        """Hand committed events to the subscribed connections of their users that want them."""
        batches: dict[Client, list[bytes]] = {}
        by_user = self._by_user
        for user, entry in committed:
            peers = by_user.get(user)
            if not peers:
                continue
            for client in peers.values():
                if client.subscribed and client.wants(entry.type, entry.symbol):
                    batch = batches.get(client)
                    if batch is None:
                        batches[client] = [entry.frame]
                    else:
                        batch.append(entry.frame)
        for client, frames in batches.items():
            if client.conn in self.clients:
                self._send_batch(client, frames)

    def offer_market(self, key: MarketKey, frame: bytes) -> None:
        """Offer one market frame to every subscribed connection that wants it."""
        event_type, symbol = key
        for client in list(self.clients.values()):
            if client.subscribed and client.wants(event_type, symbol):
                client.market.offer(key, frame)

    def users(self) -> list[str]:
        """The users with a connection here."""
        return list(self._by_user)

    def of_user(self, user: str) -> list[Client]:
        return list(self._by_user.get(user, {}).values())

    def stop(self) -> None:
        """Stop every connection's market timer (the server is stopping)."""
        for client in self.clients.values():
            client.market.stop()

    # ------------------------------------------------------------------ the bound

    def _room(self, client: Client) -> int:
        buffered = client.conn.buffered_bytes()
        return self._limits.max_buffer_bytes + client.allowance.remaining(buffered) - buffered

    def _queued(self, client: Client, frames: list[bytes], size: int) -> None:
        client.conn.send_frames(frames)
        client.allowance.queued_since += size
        client.metrics.events_sent += len(frames)

    def _send_batch(self, client: Client, frames: list[bytes]) -> None:
        """Send frames in as few writes as the bound allows; close the connection at the bound."""
        room = self._room(client)
        start = 0
        size = 0
        for index, frame in enumerate(frames):
            if size + len(frame) > room:
                if index > start:
                    self._queued(client, frames[start:index], size)
                room = self._room(client)
                start, size = index, 0
                if len(frame) > room:
                    self._drop_slow(client)
                    return
            size += len(frame)
        self._queued(client, frames[start:], size)

    def _send_market(self, client: Client, frame: bytes) -> bool:
        """Send one market frame unless it would pass the bound (then close); False if gone."""
        if client.conn not in self.clients:
            return False
        if len(frame) > self._room(client):
            self._drop_slow(client)
            return False
        client.conn.send_frame(frame)
        client.allowance.queued_since += len(frame)
        client.metrics.market_sent += 1
        return True

    def _drop_slow(self, client: Client) -> None:
        client.metrics.slow_consumer_closes += 1
        log.warning(
            "closing a connection of %s: %d bytes unsent (slow consumer)",
            client.user,
            client.conn.buffered_bytes(),
        )
        self.remove(client.conn)
        client.conn.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume from your last seq")


def parse_topics(topics: list[str]) -> frozenset[str] | None:
    """A subscribe's topics as a filter (None for `*`); raises SubscriptionError if unknown."""
    if "*" in topics:
        return None
    known = {t.value for t in Topic}
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise SubscriptionError(f"unknown topic {unknown[0]!r}")
    return frozenset(topics)
