"""REST snapshots in cluster mode: read from PostgreSQL, so every node gives the same answer.

The engine node commits each unit of work (the published state rows and the events that
describe them) in one transaction. A snapshot reads, in one `REPEATABLE READ` transaction of a
connection of its own, the user's last `seq` and the state rows, and builds the view from them
as the engine does when it loads a user (`Persistence.load`). So its data is exactly the fold
of the user's events up to that `seq`, on whichever node answers, the engine's own included.

Costs one load of the user's state per REST call: fine for snapshots, which consoles take at
start and after a RESYNC, not per event.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ginie_server.clock import Clock
from ginie_server.engine.book import AccountBook
from ginie_server.engine.health import EngineHealth
from ginie_server.engine.outbox import Account
from ginie_server.engine.persistence import Persistence
from ginie_server.engine.snapshots import snapshot_providers
from ginie_server.rest import ProvidedRead, SnapshotRead
from ginie_server.storage.event_log import EventLog
from ginie_server.storage.postgres import PostgresDatabase
from ginie_server.storage.trading import TradingStore


class StoredSnapshots:
    """`rest.SnapshotReader` on PostgreSQL, for any node of a cluster."""

    def __init__(self, url: str, symbols: tuple[str, ...], exchange: str, clock: Clock) -> None:
        self._db = PostgresDatabase(url)
        self._persistence = Persistence(TradingStore(self._db))
        self._log = EventLog(self._db)
        self._symbols = symbols
        self._exchange = exchange
        self._clock = clock

    @contextmanager
    def read(self, user: str) -> Iterator[SnapshotRead]:
        now = self._clock.now_ms()
        with self._db.read_snapshot():
            seq = self._log.last_seq(user)
            book, view = self._persistence.load(user, self._symbols, now)
            accounts = {user: Account(book, view)}
            health = EngineHealth(self._exchange, now)
            providers = snapshot_providers(accounts, self._new_book, health)

            def lifecycle(limit: int, before_seq: int | None) -> list[dict[str, Any]]:
                bound = seq + 1 if before_seq is None else min(before_seq, seq + 1)
                return self._log.lifecycle_page(user, limit, bound)

            yield ProvidedRead(user, seq, providers, lifecycle)

    def close(self) -> None:
        self._db.close()

    def _new_book(self, user: str) -> AccountBook:
        return AccountBook.new(user, self._symbols, self._clock.now_ms())
