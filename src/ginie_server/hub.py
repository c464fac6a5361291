"""The hub: numbers each user's events, makes them durable, and delivers them to that user's
connections only; coalesces public market data; closes connections that cannot keep up.

Delivery of a user event:

1. `publish(user, data)` gives it the user's next `seq`, encodes the envelope once, appends it
   to the user's in-memory replay ring and to the pending batch, and schedules a flush with
   `loop.call_soon`.
2. `flush()` inserts the whole batch into the event log with one statement and commits once,
   then hands each frame (the same bytes) to every subscribed connection of its user whose
   topic and symbol filters accept it, all of one connection's frames of the batch in one
   `send_frames` call (one socket write).

So an event is on disk before any socket sees it, and a burst of publishes costs one insert
statement and one commit. If the write fails, nothing of the batch is delivered: it is logged
and tried again shortly, in order, with the events published meanwhile.
Anything that reads state for a client (HELLO, subscribe, a REST snapshot) flushes first, so
the `seq` it reports is committed and matches the data read.

Limits, stated plainly:

- A connection is an abstract `Connection` whose `send_frame` never blocks. Before handing it
  frames the hub checks that its unsent bytes would stay within `max_buffer_bytes`; if not, it
  closes the connection with 1013 instead, and the client resumes from its last `seq`. So a
  connection's unsent data never passes the bound, and no user event is dropped for a
  connection that stays open.
- Market events bypass `seq` and the log; per connection they are coalesced per (type, symbol),
  latest wins, and sent at most `market_rate_hz` times a second per key.
- Replay comes from the in-memory ring (the last `replay_window` events per user) or else from
  the event log (the last `log_keep` events per user), at most `replay_limit` events at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from ginie_protocol.envelope import (
    Hello,
    ResumePoint,
    Resync,
    Subscribe,
    Subscribed,
    encode,
    make_event,
)
from ginie_protocol.events import EVENT_TYPE_OF, EVENT_TYPES, MARKET_TYPES, WireModel
from ginie_server.clock import Clock
from ginie_server.config import Limits
from ginie_server.sources import MarketData
from ginie_server.storage.db import read_epoch
from ginie_server.storage.event_log import EventLog, LogRow

log = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 1013
"""WebSocket close code "try again later": the connection fell too far behind."""

PRUNE_EVERY = 1_000
"""How often (in events per user) the event log is trimmed to `log_keep`."""


class Connection(Protocol):
    """What the hub needs of a client connection; the WebSocket door implements it."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one UTF-8 JSON text frame; never blocks."""

    def send_frames(self, frames: list[bytes]) -> None:
        """Queue several frames in order, as one write where possible; never blocks."""

    def buffered_bytes(self) -> int:
        """Bytes handed to `send_frame` that have not reached the network yet."""

    def close(self, code: int, reason: str) -> None:
        """Start closing; never blocks. Frames queued afterwards are discarded."""


class SubscriptionError(ValueError):
    """A subscribe request the hub cannot accept (unknown topic); the text says why."""


@dataclass(slots=True)
class UserMetrics:
    """A user's counters, served at `/api/metrics`. In memory; they restart with the server."""

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
            "errors": self.errors,
        }


@dataclass(slots=True)
class _Logged:
    """One published user event as the ring holds it."""

    seq: int
    type: str
    symbol: str | None
    frame: bytes


@dataclass(slots=True)
class _UserLog:
    seq: int
    ring: deque[_Logged]


@dataclass(slots=True, eq=False)
class _Client:
    """The hub's record of one connection: its user, filters and market coalescing state."""

    conn: Connection
    user: str
    metrics: UserMetrics
    subscribed: bool = False
    topics: frozenset[str] | None = None
    """None means every topic."""
    symbols: frozenset[str] | None = None
    """None means every symbol; events without a symbol always pass."""
    allowance: int = 0
    """Extra buffer room granted for the frames of the last replay."""
    market_pending: dict[tuple[str, str], bytes] = field(default_factory=dict)
    market_last: dict[tuple[str, str], float] = field(default_factory=dict)
    market_timer: asyncio.TimerHandle | None = None

    def wants(self, event_type: str, symbol: str | None) -> bool:
        return (self.topics is None or event_type in self.topics) and (
            symbol is None or self.symbols is None or symbol in self.symbols
        )


class Hub:
    """Per-user sequencing, durability, replay and fan-out. Implements `sources.Publisher`.

    Every method runs on the event loop thread and returns without waiting on any client.
    """

    def __init__(self, db: sqlite3.Connection, *, clock: Clock, limits: Limits | None = None):
        self._db = db
        self._clock = clock
        self._limits = limits or Limits()
        self._log = EventLog(db)
        self._epoch = read_epoch(db)
        self._users: dict[str, _UserLog] = {}
        self._clients: dict[Connection, _Client] = {}
        self._by_user: dict[str, dict[Connection, _Client]] = {}
        self._pending: list[tuple[str, _Logged]] = []
        """Published events not yet delivered (they are delivered once committed)."""
        self._unwritten: list[LogRow] = []
        """Log rows of the events published since the last commit."""
        self._inserted = 0
        """How many of `_unwritten` are inserted in the open transaction (after a failure)."""
        self._prune_due: dict[str, int] = {}
        """Users whose log passed another `PRUNE_EVERY` events: their last seq, pruned at flush."""
        self._flush_handle: asyncio.Handle | None = None
        self._market_latest: dict[tuple[str, str], MarketData] = {}
        self._metrics: dict[str, UserMetrics] = {}
        self._market_interval = 1.0 / self._limits.market_rate_hz

    # ------------------------------------------------------------------ publishing

    @property
    def epoch(self) -> str:
        return self._epoch

    def current_seq(self, user: str) -> int:
        """The last `seq` given to one of `user`'s events (0 before the first)."""
        return self._user_log(user).seq

    def publish(self, user: str, data: WireModel) -> None:
        """Number, log and (after the batch commits) deliver one user event."""
        event_type = EVENT_TYPE_OF.get(type(data))
        if event_type is None or event_type in MARKET_TYPES:
            raise TypeError(f"{type(data).__name__} is not the data of a user event")
        user_log = self._user_log(user)
        seq = user_log.seq + 1
        ts = self._clock.now_ms()
        text = encode(make_event(data, ts=ts, seq=seq, epoch=self._epoch))
        symbol = getattr(data, "symbol", None)
        self._unwritten.append((user, seq, event_type, symbol, ts, text))
        user_log.seq = seq
        entry = _Logged(seq, event_type, symbol, text.encode())
        user_log.ring.append(entry)
        self._pending.append((user, entry))
        self.metrics(user).events_published += 1
        if seq % PRUNE_EVERY == 0 and seq > self._limits.log_keep:
            self._prune_due[user] = seq
        self._schedule_flush()

    def publish_market(self, data: MarketData) -> None:
        """Offer a public market event to every subscribed connection that wants it.

        User events published before it are committed and sent first, so publish order holds
        and a market tick to every connection never holds back a user event.
        """
        event_type = EVENT_TYPE_OF.get(type(data))
        if event_type not in MARKET_TYPES:
            raise TypeError(f"{type(data).__name__} is not the data of a market event")
        if self._pending:
            self.flush()
        key = (event_type, data.symbol)
        self._market_latest[key] = data
        frame: bytes | None = None
        now = asyncio.get_running_loop().time()
        for client in self._clients.values():
            if client.subscribed and client.wants(event_type, data.symbol):
                if frame is None:
                    frame = encode(make_event(data, ts=self._clock.now_ms())).encode()
                self._offer_market(client, key, frame, now)

    def flush(self) -> None:
        """Write and commit the pending batch, then deliver it. Safe to call at any time."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        try:
            self._write_and_commit()
        except sqlite3.Error:
            log.exception("event log write failed; delivery retried shortly")
            self._retry_flush()
            return
        pending, self._pending = self._pending, []
        batches: dict[_Client, list[bytes]] = {}
        for user, entry in pending:
            for client in self._by_user.get(user, {}).values():
                if client.subscribed and client.wants(entry.type, entry.symbol):
                    batch = batches.get(client)
                    if batch is None:
                        batches[client] = [entry.frame]
                    else:
                        batch.append(entry.frame)
        for client, frames in batches.items():
            if client.conn in self._clients:
                self._send_batch(client, frames)

    def _write_and_commit(self) -> None:
        """Insert the unwritten rows with one statement, prune where due, and commit.

        Rows are counted as SQLite consumes them, so after a failure a retry inserts only
        the rows that are not in the open transaction (all of them if SQLite rolled it back).
        """
        rows = self._unwritten
        inserted = self._inserted

        def counted() -> Iterator[LogRow]:
            nonlocal inserted
            for row in islice(rows, inserted, None):
                yield row
                inserted += 1

        try:
            if inserted < len(rows):
                self._log.append_many(counted())
            while self._prune_due:
                user, seq = self._prune_due.popitem()
                self._log.prune(user, self._limits.log_keep, seq)
            self._db.commit()
        except sqlite3.Error:
            self._inserted = inserted if self._db.in_transaction else 0
            raise
        self._unwritten = []
        self._inserted = 0

    # ------------------------------------------------------------------ connections

    def connect(self, conn: Connection, user: str) -> None:
        """Register a connection of `user` and send it HELLO. It gets events once subscribed."""
        self.flush()
        metrics = self.metrics(user)
        client = _Client(conn=conn, user=user, metrics=metrics)
        self._clients[conn] = client
        self._by_user.setdefault(user, {})[conn] = client
        metrics.ws_connections += 1
        metrics.ws_open += 1
        hello = Hello(
            user=user,
            epoch=self._epoch,
            seq=self._user_log(user).seq,
            server_time=self._clock.now_ms(),
        )
        conn.send_frame(encode(hello).encode())

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection; idempotent."""
        client = self._clients.pop(conn, None)
        if client is None:
            return
        client.metrics.ws_open -= 1
        if client.market_timer is not None:
            client.market_timer.cancel()
        peers = self._by_user.get(client.user)
        if peers is not None:
            peers.pop(conn, None)
            if not peers:
                del self._by_user[client.user]

    def subscribe(self, conn: Connection, request: Subscribe) -> None:
        """Apply a subscribe: replace the filters, answer SUBSCRIBED, then RESYNC or replay.

        Raises SubscriptionError (and changes nothing) for an unknown topic.
        """
        client = self._clients[conn]
        topics = _parse_topics(request.topics)
        self.flush()
        client.topics = topics
        client.symbols = None if request.symbols is None else frozenset(request.symbols)
        for key in [k for k in client.market_pending if not client.wants(*k)]:
            del client.market_pending[key]
        replay, resync = self._plan_resume(client, request.resume)
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
        client.allowance = sum(len(frame) for frame in replay)
        for frame in replay:
            conn.send_frame(frame)
        client.metrics.replayed += len(replay)
        client.metrics.events_sent += len(replay)

    def _plan_resume(
        self, client: _Client, resume: ResumePoint | None
    ) -> tuple[list[bytes], Resync | None]:
        """The frames a resuming client missed, or the RESYNC that replaces them."""
        if resume is None:
            return [], None
        user_log = self._user_log(client.user)
        current = user_log.seq

        def resync(reason: str) -> tuple[list[bytes], Resync]:
            return [], Resync(epoch=self._epoch, seq=current, reason=reason)

        if resume.epoch != self._epoch:
            return resync(f"unknown epoch {resume.epoch!r}")
        if resume.seq > current:
            return resync(f"seq {resume.seq} is ahead of the server's last seq {current}")
        missed = current - resume.seq
        if missed == 0:
            return [], None
        if missed > self._limits.replay_limit:
            return resync(f"seq {resume.seq} is older than the replay window")
        ring = user_log.ring
        if ring and ring[0].seq <= resume.seq + 1:
            start = resume.seq + 1 - ring[0].seq
            return [
                e.frame for e in islice(ring, start, None) if client.wants(e.type, e.symbol)
            ], None
        first = self._log.first_seq(client.user)
        if first is None or first > resume.seq + 1:
            return resync(f"seq {resume.seq} is older than the replay window")
        rows = self._log.frames_after(client.user, resume.seq)
        return [frame.encode() for _, kind, sym, frame in rows if client.wants(kind, sym)], None

    # ------------------------------------------------------------------ reads for REST

    def snapshot_seq(self, user: str) -> int:
        """Flush, then the user's last committed `seq`: take it right before reading data."""
        self.flush()
        return self._user_log(user).seq

    def lifecycle_page(self, user: str, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """The user's LIFECYCLE_EVENT data from the event log, newest first, each with `seq`."""
        self.flush()
        return self._log.lifecycle_page(user, limit, before_seq)

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

    def metrics(self, user: str) -> UserMetrics:
        found = self._metrics.get(user)
        if found is None:
            found = self._metrics[user] = UserMetrics()
        return found

    def buffered_bytes(self) -> int:
        """Unsent bytes over all connections: what slow consumers cost the server."""
        return sum(client.conn.buffered_bytes() for client in self._clients.values())

    def connection_count(self, user: str | None = None) -> int:
        """Open connections (of `user`, or of everyone)."""
        if user is None:
            return len(self._clients)
        return len(self._by_user.get(user, ()))

    def subscriber_count(self, user: str) -> int:
        """Connections of `user` that have subscribed and so receive events."""
        return sum(1 for c in self._by_user.get(user, {}).values() if c.subscribed)

    def close(self) -> None:
        """Deliver what is pending and stop the timers (the server is stopping)."""
        self.flush()
        for client in self._clients.values():
            if client.market_timer is not None:
                client.market_timer.cancel()
                client.market_timer = None

    # ------------------------------------------------------------------ internals

    def _user_log(self, user: str) -> _UserLog:
        found = self._users.get(user)
        if found is None:
            found = _UserLog(
                seq=self._log.last_seq(user), ring=deque(maxlen=self._limits.replay_window)
            )
            self._users[user] = found
        return found

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_soon(self.flush)

    def _retry_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush_handle = loop.call_later(0.5, self.flush)

    def _bound(self, client: _Client) -> int:
        return self._limits.max_buffer_bytes + client.allowance

    def _send_batch(self, client: _Client, frames: list[bytes]) -> None:
        """Send frames in as few writes as the bound allows; close the connection at the bound."""
        bound = self._bound(client)
        room = bound - client.conn.buffered_bytes()
        start = 0
        size = 0
        for index, frame in enumerate(frames):
            if size + len(frame) > room:
                if index > start:
                    client.conn.send_frames(frames[start:index])
                    client.metrics.events_sent += index - start
                room = bound - client.conn.buffered_bytes()
                start, size = index, 0
                if len(frame) > room:
                    self._drop_slow(client)
                    return
            size += len(frame)
        client.conn.send_frames(frames[start:])
        client.metrics.events_sent += len(frames) - start

    def _send(self, client: _Client, frame: bytes) -> None:
        """Send one frame, unless it would take the connection past its bound: then close it."""
        if client.conn.buffered_bytes() + len(frame) > self._bound(client):
            self._drop_slow(client)
        else:
            client.conn.send_frame(frame)

    def _drop_slow(self, client: _Client) -> None:
        client.metrics.slow_consumer_closes += 1
        log.warning(
            "closing a connection of %s: %d bytes unsent (slow consumer)",
            client.user,
            client.conn.buffered_bytes(),
        )
        self.disconnect(client.conn)
        client.conn.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume from your last seq")

    def _offer_market(
        self, client: _Client, key: tuple[str, str], frame: bytes, now: float
    ) -> None:
        last = client.market_last.get(key)
        if key not in client.market_pending and (
            last is None or now - last >= self._market_interval
        ):
            client.market_last[key] = now
            client.metrics.market_sent += 1
            self._send(client, frame)
            return
        client.market_pending[key] = frame
        if client.market_timer is None:
            due = (last if last is not None else now) + self._market_interval - now
            loop = asyncio.get_running_loop()
            client.market_timer = loop.call_later(max(due, 0.0), self._flush_market, client)

    def _flush_market(self, client: _Client) -> None:
        client.market_timer = None
        if client.conn not in self._clients:
            return
        now = asyncio.get_running_loop().time()
        next_due: float | None = None
        for key, frame in list(client.market_pending.items()):
            due = client.market_last.get(key, now) + self._market_interval
            if due - now <= 0.001:
                del client.market_pending[key]
                client.market_last[key] = now
                client.metrics.market_sent += 1
                self._send(client, frame)
                if client.conn not in self._clients:
                    return
            else:
                next_due = due if next_due is None else min(next_due, due)
        if next_due is not None:
            loop = asyncio.get_running_loop()
            client.market_timer = loop.call_later(next_due - now, self._flush_market, client)


def _parse_topics(topics: list[str]) -> frozenset[str] | None:
    if "*" in topics:
        return None
    unknown = [t for t in topics if t not in EVENT_TYPES]
    if unknown:
        raise SubscriptionError(f"unknown topic {unknown[0]!r}")
    return frozenset(topics)
