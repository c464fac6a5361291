"""Engine ownership: one lease in PostgreSQL, with a fencing token.

The engine (every user's trading and the market it trades on) runs on one node at a time: the
holder of the `engine` row of `engine_lease`. A node takes the row when it is free or expired
(`try_acquire`), which adds one to its `token`; the holder renews it well before it expires
(`renew`); a node that stops cleanly frees it (`release`). Expiry is judged by PostgreSQL's
clock alone (`now()`), so the nodes' clocks never need to agree.

The token is the fence. Every journal commit of the holder begins with `SELECT
ginie_fence(token)`, which takes a share lock on the row and fails the whole transaction if the
token moved on. A node that was cut off, lost the lease and comes back can therefore never
write a `seq` another owner used: its first commit is refused before anything of it is
written, and the node stops its engine. Taking the lease waits for a commit under way (the
share lock), and the new holder reads the users' last `seq` only once it holds the lease.

A node whose commit stalls mid-transaction (a partition) would hold the share lock and block a
takeover: the journal's connection is opened with `idle_in_transaction_session_timeout`, so
PostgreSQL ends such a transaction on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from ginie_server.storage.backend import Database
from ginie_server.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

LEASE = "engine"
STALLED = {"idle_in_transaction_session_timeout": "3s", "statement_timeout": "10s"}
"""Settings of a node's sessions in a cluster (the journal's and the lease's): PostgreSQL ends
a transaction the node left stalled (a partition), so its locks never keep a standby from
taking the engine over, and no statement runs for longer than 10 s."""
FENCED = "GF001"
"""The SQLSTATE `ginie_fence` raises when the token is no longer the lease's."""

CLUSTER_MIGRATIONS = (
    f"""
    CREATE TABLE engine_lease (
        name TEXT COLLATE "C" PRIMARY KEY,
        holder TEXT,
        token BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    INSERT INTO engine_lease (name, holder, token, expires_at)
        VALUES ('{LEASE}', NULL, 0, 'epoch');
    CREATE FUNCTION ginie_fence(expected BIGINT) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM engine_lease WHERE name = '{LEASE}' AND token = expected FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                MESSAGE = 'fenced: the engine lease has a newer token',
                ERRCODE = '{FENCED}';
        END IF;
    END $$;
    """,
)

ACQUIRE = (
    "UPDATE engine_lease SET holder = ?, token = token + 1, "
    "expires_at = now() + make_interval(secs => ?) "
    "WHERE name = ? AND (holder IS NULL OR holder = ? OR expires_at < now()) RETURNING token"
)
RENEW = (
    "UPDATE engine_lease SET expires_at = now() + make_interval(secs => ?) "
    "WHERE name = ? AND holder = ? AND token = ? RETURNING token"
)
RELEASE = (
    "UPDATE engine_lease SET holder = NULL, expires_at = now() "
    "WHERE name = ? AND token = ? RETURNING token"
)
HOLDER = "SELECT holder, token, expires_at > now() FROM engine_lease WHERE name = ?"


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """The journal's fence for a held lease (`journal.Fence`)."""

    token: int

    def check(self, db: Database) -> None:
        if not isinstance(db, PostgresDatabase):
            raise TypeError("the engine lease lives in PostgreSQL; its fence checks nothing else")
        db.begin()
        db.execute("SELECT ginie_fence(?)", (self.token,))

    def refused(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate == FENCED


class EngineLease:
    """The lease's statements, on a connection of their own (never the journal's, so a renewal
    is never part of a unit of work). Each call is one short transaction."""

    def __init__(self, url: str, node: str, seconds: float) -> None:
        self.node = node
        self.seconds = seconds
        self._db = PostgresDatabase(url, {"lock_timeout": f"{int(seconds * 1000)}ms", **STALLED})
        self._db.migrate("cluster", CLUSTER_MIGRATIONS)

    def try_acquire(self) -> int | None:
        """Take the lease if it is free, expired or this node's own: its new token, else
        None."""
        return self._one(ACQUIRE, (self.node, self.seconds, LEASE, self.node))

    def renew(self, token: int) -> bool:
        """Extend the lease held under `token`; False if it is no longer ours."""
        return self._one(RENEW, (self.seconds, LEASE, self.node, token)) is not None

    def release(self, token: int) -> None:
        """Free the lease held under `token` (a clean stop): a standby takes it at once."""
        self._one(RELEASE, (LEASE, token))

    def holder(self) -> tuple[str | None, int, bool]:
        """`(holder, token, unexpired)` as PostgreSQL sees them now."""
        row = self._db.execute(HOLDER, (LEASE,)).fetchone()
        if row is None:
            raise LookupError("the engine lease row is missing")
        return (row[0], int(row[1]), bool(row[2]))

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, parameters: tuple[object, ...]) -> int | None:
        try:
            row = self._db.execute(sql, parameters).fetchone()
            self._db.commit()
        except psycopg.Error:
            self._db.rollback()
            raise
        return None if row is None else int(row[0])
