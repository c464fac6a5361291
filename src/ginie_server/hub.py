"""The hub: the sources' `Publisher` and the doors' view of delivery, wiring three parts.

- `Journal` numbers each user's events and commits them, with the state writes the sources
  staged, in one transaction (the unit of work);
- `FanOut` hands committed frames to that user's connections only, within the byte bound;
- `MarketThrottle` (one per connection) coalesces public market data.

Delivery of a user event: `publish(user, data)` appends it to the journal and schedules a commit
with `loop.call_soon`, so a burst of publishes costs one transaction; after the commit, fan-out
delivers the whole batch. If the commit fails, nothing of it is delivered: it is retried shortly,
in order, with what was published meanwhile. Anything that reads state for a client (HELLO,
subscribe, a REST snapshot) commits first, so the `seq` it reports is durable and matches the
data read.

In cluster mode the hub also has an `outbound` (the broker): every committed batch and every
market frame is handed to it after local delivery, for the other nodes. What the other nodes
committed comes back in through `relayed` (events the broker carried) and `catch_up` (events
read from the log that the broker missed); `offer_market_frame` takes in their market data.

Every method runs on the event loop thread and returns without waiting on any client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from ginie_protocol.envelope import Hello, Subscribe, Subscribed, encode, make_event
from ginie_protocol.events import Kline, Topic, WireModel, spec_of
from ginie_server.clock import Clock
from ginie_server.config import Limits
from ginie_server.fanout import CLOSE_SLOW_CONSUMER, Connection, FanOut, SubscriptionError
from ginie_server.journal import Committed, Journal, StateWrite
from ginie_server.market_throttle import MarketKey
from ginie_server.metrics import MetricsBook, UserMetrics
from ginie_server.sources import MarketData
from ginie_server.storage.backend import Database

log = logging.getLogger(__name__)

__all__ = ["CLOSE_SLOW_CONSUMER", "Connection", "Hub", "SubscriptionError"]

RETRY_SECONDS = 0.5
"""How soon a failed commit is tried again."""

RECENT_KLINES = 60
"""Candles per symbol a cluster node's hub keeps of the market data it saw (for
`/api/market` on a node that relays the market rather than producing it)."""


RelayedEvent = tuple[str, int, str, str | None, bytes]
"""`(user, seq, type, symbol, frame)` of an event another node committed."""


class Outbound(Protocol):
    """Where committed events and market frames go after local delivery (the broker)."""

    def events(self, committed: Committed) -> None:
        """Committed user events, in commit order; never blocks."""

    def market(self, key: MarketKey, frame: bytes) -> None:
        """One market frame; never blocks."""


class Hub:
    """Per-user sequencing, durability, replay and fan-out. Implements `sources.Publisher`."""

    def __init__(self, db: Database, *, clock: Clock, limits: Limits | None = None):
        self._clock = clock
        self._limits = limits or Limits()
        self._metrics = MetricsBook()
        self.fanout = FanOut(self._limits)
        self.journal = Journal(db, clock=clock, limits=self._limits, on_commit=self._committed)
        self.outbound: Outbound | None = None
        self.follows = False
        """True while another node writes this hub's users (a cluster node without the
        engine): reads for a client catch up from the log first."""
        self._commit_handle: asyncio.Handle | None = None
        self._market_latest: dict[tuple[str, str], MarketData] = {}
        self._klines: dict[str, OrderedDict[int, Kline]] = {}

    @property
    def epoch(self) -> str:
        return self.journal.epoch

    def current_seq(self, user: str) -> int:
        """The last `seq` given to one of `user`'s events (0 before the first)."""
        return self.journal.current_seq(user)

    # ------------------------------------------------------------------ Publisher

    def publish(self, user: str, data: WireModel) -> None:
        """Number and stage one user event; it is delivered once its unit of work commits."""
        self.journal.append(user, data)
        self.metrics(user).events_published += 1
        self._schedule_commit()

    def write(self, op: StateWrite) -> None:
        """Stage a state write; it commits with the events published next to it."""
        self.journal.write(op)
        self._schedule_commit()

    def publish_market(self, data: MarketData) -> None:
        """Offer a public market event to every subscribed connection that wants it.

        User events published before it are committed and sent first, so publish order holds.
        """
        spec = spec_of(data)
        if spec.scope != "market":
            raise TypeError(f"{type(data).__name__} is not the data of a market event")
        if self.journal.pending:
            self.flush()
        key = (spec.topic.value, data.symbol)
        self._keep_market(key, data)
        outbound = self.outbound
        if self.fanout.clients or outbound is not None:
            frame = encode(make_event(data, ts=self._clock.now_ms())).encode()
            self.fanout.offer_market(key, frame)
            if outbound is not None:
                outbound.market(key, frame)

    def offer_market_frame(self, data: MarketData, frame: bytes) -> None:
        """Take in market data another node produced (`frame` is its encoded event)."""
        key = (spec_of(data).topic.value, data.symbol)
        self._keep_market(key, data)
        self.fanout.offer_market(key, frame)

    # ------------------------------------------------------------------ events of other nodes

    def relayed(self, events: list[RelayedEvent]) -> None:
        """Deliver events other nodes committed, in one batch, skipping those known already
        (events the broker missed before one are read from the log and delivered first)."""
        journal = self.journal
        deliver: Committed = []
        for user, seq, event_type, symbol, frame in events:
            deliver.extend(journal.relayed(user, seq, event_type, symbol, frame))
        self._deliver(deliver)

    def catch_up(self, users: Iterable[str]) -> None:
        """Deliver what the log holds of `users` beyond the last event known here."""
        users = list(users)
        known = self.journal.last_seqs(users)
        for user in users:
            if known.get(user, 0) > self.current_seq(user):
                self._deliver(self.journal.catch_up(user))

    def reload(self) -> None:
        """Drop what is staged and renumber from the log (this node starts or stops writing),
        delivering what other nodes committed meanwhile, user by user. Raises the database's
        error if the log cannot be read: users not reached yet are caught up later (a relayed
        event after a gap, `catch_up`, a client's connect)."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        journal = self.journal
        journal.reload()
        self.catch_up(journal.users())

    def flush(self) -> None:
        """Commit the unit of work (then fan-out delivers it). Safe to call at any time."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        if not self.journal.commit():
            self._retry_commit()

    # ------------------------------------------------------------------ connections

    def connect(self, conn: Connection, user: str) -> None:
        """Register a connection of `user` and send it HELLO. It gets events once subscribed."""
        self.flush()
        self._follow_up(user)
        self.fanout.add(conn, user, self.metrics(user))
        hello = Hello(
            user=user,
            epoch=self.epoch,
            seq=self.current_seq(user),
            server_time=self._clock.now_ms(),
        )
        conn.send_frame(encode(hello).encode())

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection; idempotent."""
        self.fanout.remove(conn)

    def subscribe(self, conn: Connection, request: Subscribe) -> None:
        """Apply a subscribe: replace the filters, answer SUBSCRIBED, then RESYNC or replay.

        Raises SubscriptionError (and changes nothing) for an unknown topic.
        """
        client = self.fanout.clients[conn]
        self.flush()
        self._follow_up(client.user)
        self.fanout.set_filters(client, request.topics, request.symbols)
        replay, resync = self.journal.plan_resume(client.user, request.resume, client.wants)
        client.subscribed = True
        answer = Subscribed(
            topics=list(dict.fromkeys(request.topics)),
            symbols=None if client.symbols is None else sorted(client.symbols),
            resumed=request.resume is not None and resync is None,
            replayed=len(replay),
        )
        conn.send_frame(encode(answer).encode())
        if resync is not None:
            client.metrics.resyncs += 1
            conn.send_frame(encode(resync).encode())
        self.fanout.replay(client, replay)

    # ------------------------------------------------------------------ reads for REST

    def snapshot_seq(self, user: str) -> int:
        """Commit, then the user's last durable `seq`: take it right before reading data."""
        self.flush()
        return self.current_seq(user)

    def lifecycle_page(self, user: str, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """The user's LIFECYCLE_EVENT data from the event log, newest first, each with `seq`."""
        self.flush()
        return self.journal.lifecycle_page(user, limit, before_seq)

    def market_latest(
        self, event_type: str, symbols: Iterable[str] | None = None
    ) -> list[MarketData]:
        """The latest market data of one type per symbol that published it, by symbol."""
        wanted = None if symbols is None else set(symbols)
        return [
            data
            for (kind, symbol), data in sorted(self._market_latest.items())
            if kind == event_type and (wanted is None or symbol in wanted)
        ]

    def recent_market(self, symbol: str) -> list[MarketData]:
        """What the hub saw of one symbol: its mark price, recent candles and order book."""
        data: list[MarketData] = [
            found
            for kind in (Topic.FUTURES_MARK_PRICE_UPDATE, Topic.FUTURES_ORDERBOOK_UPDATE)
            if (found := self._market_latest.get((kind, symbol))) is not None
        ]
        data[1:1] = self._klines.get(symbol, {}).values()
        return data

    def metrics(self, user: str) -> UserMetrics:
        return self._metrics.of(user)

    def node_metrics(self) -> UserMetrics:
        """Every user's counters added up."""
        return self._metrics.total()

    def buffered_bytes(self) -> int:
        """Unsent bytes over all connections: what slow consumers cost the server."""
        return sum(client.conn.buffered_bytes() for client in self.fanout.clients.values())

    def connection_count(self, user: str | None = None) -> int:
        """Open connections (of `user`, or of everyone)."""
        if user is None:
            return len(self.fanout.clients)
        return len(self.fanout.of_user(user))

    def subscriber_count(self, user: str) -> int:
        """Connections of `user` that have subscribed and so receive events."""
        return sum(1 for c in self.fanout.of_user(user) if c.subscribed)

    def close(self) -> None:
        """Deliver what is pending and stop the timers (the server is stopping)."""
        self.flush()
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self.fanout.stop()

    # ------------------------------------------------------------------ internals

    def _follow_up(self, user: str) -> None:
        """On a hub that does not write, take in what the log holds beyond what the broker
        brought, so HELLO and a resume plan see every committed event."""
        if self.follows:
            try:
                self.catch_up([user])
            except self.journal.errors:
                log.warning(
                    "cannot read the log for %s; going on with what the broker brought", user
                )

    def _committed(self, committed: Committed) -> None:
        self.fanout.deliver(committed)
        if self.outbound is not None:
            self.outbound.events(committed)

    def _deliver(self, events: Committed) -> None:
        if events:
            self.fanout.deliver(events)

    def _keep_market(self, key: tuple[str, str], data: MarketData) -> None:
        self._market_latest[key] = data
        if isinstance(data, Kline) and self.outbound is not None:
            candles = self._klines.setdefault(data.symbol, OrderedDict())
            candles[data.open_time] = data
            if len(candles) > RECENT_KLINES:
                candles.popitem(last=False)

    def _schedule_commit(self) -> None:
        if self._commit_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._commit_handle = loop.call_soon(self.flush)

    def _retry_commit(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._commit_handle = loop.call_later(RETRY_SECONDS, self.flush)
