"""The durable log of user events: every frame a user was sent, by `(user, seq)`.

The hub appends to it before it sends (the commit is the hub's), replays from it when a
client resumes from further back than memory holds, and serves the `LIFECYCLE_EVENT`
snapshot from it. Frames are stored as the exact text that went on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ginie_server.storage.backend import Database

LogRow = tuple[str, int, str, str | None, int, str]
"""One event as the log stores it: `(user, seq, type, symbol, ts, frame)`."""

INSERT = 'INSERT INTO events ("user", seq, type, symbol, ts, frame) VALUES (?, ?, ?, ?, ?, ?)'


class EventLog:
    """Reads and appends frames in the `events` table; never commits on its own."""

    def __init__(self, conn: Database) -> None:
        self._conn = conn

    def append(
        self, user: str, seq: int, event_type: str, symbol: str | None, ts: int, frame: str
    ) -> None:
        self._conn.execute(INSERT, (user, seq, event_type, symbol, ts, frame))

    def append_many(self, rows: Iterable[LogRow]) -> None:
        """Insert rows in order with one statement. If a row fails, the rows before it stay
        inserted (uncommitted) and the exception propagates."""
        self._conn.executemany(INSERT, rows)

    def last_seq(self, user: str) -> int:
        row = self._conn.execute('SELECT MAX(seq) FROM events WHERE "user" = ?', (user,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def last_seqs(self, users: list[str]) -> dict[str, int]:
        """The last `seq` of each of `users` that has events, in one query."""
        if not users:
            return {}
        marks = ", ".join("?" for _ in users)
        rows = self._conn.execute(
            f'SELECT "user", MAX(seq) FROM events WHERE "user" IN ({marks}) GROUP BY "user"',
            users,
        )
        return {str(user): int(seq) for user, seq in rows}

    def first_seq(self, user: str) -> int | None:
        row = self._conn.execute('SELECT MIN(seq) FROM events WHERE "user" = ?', (user,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def frame_at(self, user: str, seq: int) -> str | None:
        """The frame logged under `(user, seq)`, or None."""
        row = self._conn.execute(
            'SELECT frame FROM events WHERE "user" = ? AND seq = ?', (user, seq)
        ).fetchone()
        return str(row[0]) if row else None

    def frames_after(self, user: str, after_seq: int) -> list[tuple[int, str, str | None, str]]:
        """`(seq, type, symbol, frame)` of every held event with seq > `after_seq`, in order."""
        rows = self._conn.execute(
            'SELECT seq, type, symbol, frame FROM events WHERE "user" = ? AND seq > ? ORDER BY seq',
            (user, after_seq),
        )
        return [(int(seq), str(kind), symbol, str(frame)) for seq, kind, symbol, frame in rows]

    def lifecycle_page(self, user: str, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """The `data` of up to `limit` LIFECYCLE_EVENTs, newest first, each with its `seq`.

        The type is a literal in the query so that the partial index `lifecycle_events` can
        be used (a bound parameter cannot prove the index's condition).
        """
        rows = self._conn.execute(
            "SELECT seq, frame FROM events WHERE \"user\" = ? AND type = 'LIFECYCLE_EVENT' "
            "AND seq < ? ORDER BY seq DESC LIMIT ?",
            (user, before_seq if before_seq is not None else 2**62, limit),
        )
        items: list[dict[str, Any]] = []
        for seq, frame in rows:
            data = json.loads(frame)["data"]
            data["seq"] = int(seq)
            items.append(data)
        return items

    def prune(self, user: str, keep: int, last_seq: int) -> None:
        """Forget the user's events older than the newest `keep`."""
        self._conn.execute(
            'DELETE FROM events WHERE "user" = ? AND seq <= ?', (user, last_seq - keep)
        )
