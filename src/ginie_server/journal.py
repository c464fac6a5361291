"""The journal: numbers each user's events and owns the one transaction that makes them durable.

A unit of work is everything staged since the last commit: the sources' state writes
(`write(op)`) and the user events that describe them (`append(user, data)`). `commit()` is the
only place in the server that commits: in one transaction it runs the staged writes in order,
inserts the events with one statement and trims the log where due; only then does it hand the
events to its `on_commit` callback (the fan-out). So no socket ever sees an event whose state
is not on disk, and no state is on disk without the events that describe it.

If the transaction fails it is rolled back whole and the unit of work is kept, so a retry
(`commit()` again, which the hub schedules) writes all of it, in order, together with what was
staged meanwhile. Staged writes must therefore be idempotent (upserts, keyed deletes, rows
with their ids given). On PostgreSQL a commit can fail after it took effect (the connection
broke during `COMMIT`): before a retry the journal looks for the last event of the failed
attempt in the log, and if it is there, that attempt committed; it is delivered, not
written twice.

The journal runs on either backend (`storage.backend.Database`): an `sqlite3.Connection` or
a `storage.postgres.PostgresDatabase`.

The journal also holds each user's replay ring (the last `replay_window` events in memory) and
plans a resume: the frames a client missed, from the ring or from the durable log, or the
RESYNC that replaces them.

In cluster mode (`docs/cluster.md`) one node at a time writes a user's events: the one whose
`fence` (the engine lease's fencing token) is current. The fence runs first in every unit of
work's transaction; if another node took the lease over, the transaction is refused whole and
nothing of it is sent. Nodes that do not write learn each committed event from the broker
(`relayed`) or, for what the broker missed, from the log itself (`catch_up`); `reload` puts
the sequence numbers back on the last committed events when a node starts or stops writing.

Limits: the ring holds events from the moment they are appended, so a resume planned before a
commit could see uncommitted events; every reader commits first (`Hub` does).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from ginie_protocol.envelope import ResumePoint, Resync, encode, make_event
from ginie_protocol.events import WireModel, spec_of
from ginie_server.clock import Clock
from ginie_server.config import Limits
from ginie_server.metrics import Histogram
from ginie_server.storage.backend import Database, batched, dialect_of
from ginie_server.storage.db import StateWrite, read_epoch
from ginie_server.storage.event_log import EventLog, LogRow

log = logging.getLogger(__name__)

PRUNE_EVERY = 1_000
"""How often (in events per user) the event log is trimmed to `log_keep`."""


@dataclass(slots=True)
class Logged:
    """One appended user event: its number, type, symbol and encoded frame."""

    seq: int
    type: str
    symbol: str | None
    frame: bytes


Committed = list[tuple[str, Logged]]
"""The events one commit made durable, `(user, event)` in append order."""


class Fence(Protocol):
    """The proof, checked inside each commit, that this node still owns the users it writes."""

    def check(self, db: Database) -> None:
        """Run a statement, first in the unit of work's transaction, that fails the
        transaction if the fence is no longer current."""

    def refused(self, exc: Exception) -> bool:
        """Whether `exc`, raised by a commit, is this fence refusing it."""


@dataclass(slots=True)
class _UserLog:
    seq: int
    """The last `seq` given (committed or staged)."""
    ring: deque[Logged]
    committed: int
    """The last `seq` known to be in the log."""


@dataclass(slots=True)
class _UnitOfWork:
    """What the next commit writes."""

    writes: list[StateWrite] = field(default_factory=list)
    rows: list[LogRow] = field(default_factory=list)
    events: Committed = field(default_factory=list)
    prune_due: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.writes or self.rows)

    def size(self) -> tuple[int, int, int]:
        return len(self.writes), len(self.rows), len(self.events)

    def take(self, size: tuple[int, int, int]) -> Committed:
        """Drop the first `size` writes, rows and events (committed already); their events."""
        writes, rows, events = size
        done = self.events[:events]
        del self.writes[:writes], self.rows[:rows], self.events[:events]
        return done


class Journal:
    """Sequencing, the unit of work and its commit, the replay ring and the resume plan."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        limits: Limits,
        on_commit: Callable[[Committed], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits
        self._errors = dialect_of(db).errors
        self._log = EventLog(db)
        self._epoch = read_epoch(db)
        self._unsure: tuple[int, int, int] | None = None
        """The size of the unit of work when its `COMMIT` itself failed: it may have taken
        effect (found out before the next attempt)."""
        self._users: dict[str, _UserLog] = {}
        self._work = _UnitOfWork()
        self.on_commit = on_commit
        """Called with the events of each successful commit, after it."""
        self.fence: Fence | None = None
        """Checked in every commit when set (cluster mode: the engine lease)."""
        self.on_fenced: Callable[[], None] | None = None
        """Called when the fence refused a commit: another node writes these users now."""
        self.commits = 0
        """Successful commits so far."""
        self.commit_seconds = Histogram()
        """How long each successful commit took (its statements and the commit)."""

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """What the database raises when a statement or a commit fails."""
        return self._errors

    @property
    def pending(self) -> bool:
        """Whether anything is staged and not yet committed."""
        return bool(self._work)

    def current_seq(self, user: str) -> int:
        """The last `seq` given to one of `user`'s events (0 before the first)."""
        return self._user_log(user).seq

    def write(self, op: StateWrite) -> None:
        """Stage a state write for the next commit."""
        self._work.writes.append(op)

    def append(self, user: str, data: WireModel) -> Logged:
        """Number and encode one user event and stage it for the next commit."""
        spec = spec_of(data)
        if spec.scope != "user":
            raise TypeError(f"{type(data).__name__} is not the data of a user event")
        user_log = self._user_log(user)
        seq = user_log.seq + 1
        ts = self._clock.now_ms()
        text = encode(make_event(data, ts=ts, seq=seq, epoch=self._epoch))
        symbol = getattr(data, "symbol", None)
        work = self._work
        work.rows.append((user, seq, spec.topic.value, symbol, ts, text))
        user_log.seq = seq
        entry = Logged(seq, spec.topic.value, symbol, text.encode())
        user_log.ring.append(entry)
        work.events.append((user, entry))
        if seq % PRUNE_EVERY == 0 and seq > self._limits.log_keep:
            work.prune_due[user] = seq
        return entry

    def commit(self) -> bool:
        """Write the unit of work in one transaction and commit it, then hand its events on.

        Returns False (the unit of work kept whole for a retry) if the database refused it.
        """
        work = self._work
        if not work:
            return True
        db = self._db
        started = time.perf_counter()
        try:
            if self._unsure is not None:
                self._drop_committed_attempt(work, self._unsure)
                if not work:
                    return True
            if db.in_transaction:
                log.warning("a write outside the journal is committed with its unit of work")
            with batched(db):
                if self.fence is not None:
                    self.fence.check(db)
                for op in work.writes:
                    op(db)
                if work.rows:
                    self._log.append_many(work.rows)
                for user, seq in work.prune_due.items():
                    self._log.prune(user, self._limits.log_keep, seq)
        except self._errors as exc:
            if self.fence is not None and self.fence.refused(exc):
                return self._fenced()
            return self._failed()
        try:
            db.commit()
        except self._errors:
            self._unsure = work.size()
            return self._failed()
        self._work = _UnitOfWork()
        self.commits += 1
        self.commit_seconds.observe(time.perf_counter() - started)
        self._hand_on(work.events)
        return True

    def _hand_on(self, events: Committed) -> None:
        """Mark `events` committed and hand them to `on_commit`."""
        users = self._users
        for user, entry in events:
            users[user].committed = entry.seq
        if events and self.on_commit is not None:
            self.on_commit(events)

    def _fenced(self) -> bool:
        """Another node owns these users now: drop the unit of work and every number given
        since the last commit (that node may use them), and say so. Nothing of it was written
        or sent, and no client is told of those numbers again (HELLO, replay)."""
        log.warning("journal commit refused: the engine lease moved to another node")
        self._db.rollback()
        self.reload()
        if self.on_fenced is not None:
            self.on_fenced()
        return True

    def _failed(self) -> bool:
        log.exception("journal commit failed; the unit of work is kept for a retry")
        self._db.rollback()
        return False

    def _drop_committed_attempt(self, work: _UnitOfWork, attempt: tuple[int, int, int]) -> None:
        """If the commit of the first `attempt` items of `work` failed but took effect after
        all, take them out of `work` and deliver their events."""
        rows = attempt[1]
        committed = False
        if rows > 0:
            user, seq, *_, frame = work.rows[rows - 1]
            committed = self._log.frame_at(user, seq) == frame
        self._unsure = None
        if not committed:
            return
        log.warning("the journal commit that failed had taken effect; delivering it")
        done = work.take(attempt)
        self.commits += 1
        self._hand_on(done)

    # ------------------------------------------------------------------ events written elsewhere

    def relayed(
        self, user: str, seq: int, event_type: str, symbol: str | None, frame: bytes
    ) -> Committed:
        """An event another node committed, as the broker relayed it: the events to deliver
        (none if it was known already; those the broker missed first, read from the log)."""
        user_log = self._user_log(user)
        if seq <= user_log.seq:
            return []
        if seq > user_log.seq + 1:
            return self.catch_up(user)
        entry = Logged(seq, event_type, symbol, frame)
        user_log.seq = user_log.committed = seq
        user_log.ring.append(entry)
        return [(user, entry)]

    def catch_up(self, user: str) -> Committed:
        """The user's events committed (by any node) after the last one this journal knows,
        read from the log and taken in: the events to deliver."""
        user_log = self._user_log(user)
        caught: Committed = []
        for seq, kind, symbol, frame in self._log.frames_after(user, user_log.seq):
            entry = Logged(seq, kind, symbol, frame.encode())
            user_log.ring.append(entry)
            caught.append((user, entry))
        if caught:
            user_log.seq = user_log.committed = caught[-1][1].seq
        return caught

    def last_seqs(self, users: list[str]) -> dict[str, int]:
        """The last logged `seq` of each of `users` that has one."""
        return self._log.last_seqs(users)

    def reload(self) -> None:
        """Forget what is staged and put every user's numbering back on its last committed
        event: events appended here but never committed leave the ring. For a node that starts
        or stops writing (then `catch_up` each of `users()` for what others committed)."""
        self._work = _UnitOfWork()
        self._unsure = None
        for user_log in self._users.values():
            while user_log.ring and user_log.ring[-1].seq > user_log.committed:
                user_log.ring.pop()
            user_log.seq = user_log.committed

    def users(self) -> list[str]:
        """The users this journal holds numbers of."""
        return list(self._users)

    # ------------------------------------------------------------------ reads

    def plan_resume(
        self, user: str, resume: ResumePoint | None, wants: Callable[[str, str | None], bool]
    ) -> tuple[list[bytes], Resync | None]:
        """The frames a client resuming from `resume` missed (those it `wants`), or the RESYNC
        that replaces them. Commit first, so that every frame planned is durable."""
        if resume is None:
            return [], None
        user_log = self._user_log(user)
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
            return [e.frame for e in islice(ring, start, None) if wants(e.type, e.symbol)], None
        first = self._log.first_seq(user)
        if first is None or first > resume.seq + 1:
            return resync(f"seq {resume.seq} is older than the replay window")
        rows = self._log.frames_after(user, resume.seq)
        return [frame.encode() for _, kind, sym, frame in rows if wants(kind, sym)], None

    def lifecycle_page(self, user: str, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """The user's LIFECYCLE_EVENT data from the durable log, newest first, each with `seq`."""
        return self._log.lifecycle_page(user, limit, before_seq)

    def _user_log(self, user: str) -> _UserLog:
        found = self._users.get(user)
        if found is None:
            last = self._log.last_seq(user)
            found = _UserLog(last, deque(maxlen=self._limits.replay_window), last)
            self._users[user] = found
        return found
