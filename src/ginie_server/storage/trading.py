"""The trading engine's tables: its published state, its lifecycle rows, and paper prices.

- `trading_state` holds, per user, the last published item of every snapshot topic (keyed as
  the topic is keyed; `''` for a singleton) and the engine's internal books (topic `_engine`).
  Rows are written on the shared connection just before their event is published, so the
  hub's commit makes state and event durable together. A finished chain or signal has a
  `finished` rank (growing with each that finishes, NULL while live), so a restart loads the
  live ones and only the newest finished ones (`load(..., finished_limit=)`).
- `trade_lifecycle_events` has one row per step of a chain; its `id` is the `id` of the
  `LIFECYCLE_EVENT` that reports it.
- `paper_prices` keeps the paper market's last prices, so a restarted market goes on from them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ginie_protocol.events import LifecycleEvent, WireModel
from ginie_server.storage.db import migrate

TRADING_MIGRATIONS = (
    """
    CREATE TABLE trading_state (
        user TEXT NOT NULL,
        topic TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (user, topic, key)
    ) WITHOUT ROWID;
    CREATE TABLE trade_lifecycle_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        chain_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        step TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL,
        time INTEGER NOT NULL
    );
    CREATE INDEX lifecycle_by_user_chain ON trade_lifecycle_events(user, chain_id, id);
    CREATE TABLE paper_prices (
        symbol TEXT PRIMARY KEY,
        price REAL NOT NULL,
        time INTEGER NOT NULL
    );
    """,
    """
    ALTER TABLE trading_state ADD COLUMN finished INTEGER;
    UPDATE trading_state SET finished = json_extract(data, '$.closed_at')
        WHERE topic = 'CHAIN_UPDATE'
        AND json_extract(data, '$.status') IN ('closed', 'cancelled', 'failed');
    UPDATE trading_state SET finished = json_extract(data, '$.decided_at')
        WHERE topic = 'SIGNAL_UPDATE'
        AND json_extract(data, '$.status') NOT IN ('pending', 'approved');
    CREATE INDEX trading_state_live ON trading_state(user, finished);
    CREATE INDEX trading_state_finished ON trading_state(user, topic, finished);
    """,
)

INTERNAL = "_engine"
"""The topic under which the engine keeps its internal books."""

FINISHING_TOPICS = ("CHAIN_UPDATE", "SIGNAL_UPDATE")
"""Topics whose items finish: their finished rows carry a rank (see the module docstring)."""


@dataclass(slots=True)
class StoredState:
    """What the database holds of one user: topic -> key -> JSON, the finish rank of each
    finished item (topic -> key -> rank; finished items come after live ones, oldest
    first), and the engine's internal books."""

    topics: dict[str, dict[str, str]] = field(default_factory=dict)
    ranks: dict[str, dict[str, int]] = field(default_factory=dict)
    internal: dict[str, Any] | None = None


class TradingStore:
    """Reads and writes the engine's tables on the shared connection; never commits on its
    own except `save_prices`, which is market data no event carries."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        migrate(conn, "trading", TRADING_MIGRATIONS)

    def users(self) -> list[str]:
        """Users the engine holds state for."""
        rows = self.conn.execute("SELECT DISTINCT user FROM trading_state ORDER BY user")
        return [r[0] for r in rows]

    def put(
        self, user: str, topic: str, key: str, model: WireModel, finished: int | None = None
    ) -> None:
        """Write an item's state; `finished` is its finish rank once it has finished."""
        self.conn.execute(
            "INSERT OR REPLACE INTO trading_state (user, topic, key, data, finished) "
            "VALUES (?, ?, ?, ?, ?)",
            (user, topic, key, model.model_dump_json(), finished),
        )

    def get(self, user: str, topic: str, key: str) -> str | None:
        """One item's state as JSON, or None."""
        row = self.conn.execute(
            "SELECT data FROM trading_state WHERE user = ? AND topic = ? AND key = ?",
            (user, topic, key),
        ).fetchone()
        return row[0] if row else None

    def delete(self, user: str, topic: str, key: str) -> None:
        self.conn.execute(
            "DELETE FROM trading_state WHERE user = ? AND topic = ? AND key = ?",
            (user, topic, key),
        )

    def put_internal(self, user: str, data: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO trading_state (user, topic, key, data) VALUES (?, ?, '', ?)",
            (user, INTERNAL, json.dumps(data)),
        )

    def load(self, user: str, finished_limit: int | None = None) -> StoredState:
        """A user's published items and internal books: every live item, and of the finished
        ones the newest `finished_limit` per topic (all of them with None)."""
        state = StoredState()
        rows = self.conn.execute(
            "SELECT topic, key, data FROM trading_state INDEXED BY trading_state_live "
            "WHERE user = ? AND finished IS NULL",
            (user,),
        )
        for topic, key, data in rows:
            if topic == INTERNAL:
                state.internal = json.loads(data)
            else:
                state.topics.setdefault(topic, {})[key] = data
        limit = -1 if finished_limit is None else finished_limit
        for topic in FINISHING_TOPICS:
            newest = self.conn.execute(
                "SELECT key, data, finished FROM trading_state "
                "WHERE user = ? AND topic = ? AND finished IS NOT NULL "
                "ORDER BY finished DESC, key DESC LIMIT ?",
                (user, topic, limit),
            ).fetchall()
            for key, data, rank in reversed(newest):
                state.topics.setdefault(topic, {})[key] = data
                state.ranks.setdefault(topic, {})[key] = rank
        return state

    def insert_lifecycle(
        self,
        user: str,
        chain_id: str,
        symbol: str,
        step: str,
        message: str,
        details: dict[str, str | float | int | bool | None],
        time: int,
    ) -> LifecycleEvent:
        """Write one lifecycle row; returns it as the event that reports it."""
        cur = self.conn.execute(
            "INSERT INTO trade_lifecycle_events "
            "(user, chain_id, symbol, step, message, details, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user, chain_id, symbol, step, message, json.dumps(details), time),
        )
        row_id = cur.lastrowid
        assert row_id is not None
        return LifecycleEvent(
            id=row_id,
            chain_id=chain_id,
            symbol=symbol,
            step=step,
            message=message,
            details=details,
            time=time,
        )

    def lifecycle(self, user: str, chain_id: str | None = None) -> list[LifecycleEvent]:
        """A user's lifecycle rows, oldest first, optionally of one chain."""
        query = (
            "SELECT id, chain_id, symbol, step, message, details, time "
            "FROM trade_lifecycle_events WHERE user = ?"
        )
        args: tuple[str, ...] = (user,)
        if chain_id is not None:
            query += " AND chain_id = ?"
            args = (user, chain_id)
        return [
            LifecycleEvent(
                id=r[0],
                chain_id=r[1],
                symbol=r[2],
                step=r[3],
                message=r[4],
                details=json.loads(r[5]),
                time=r[6],
            )
            for r in self.conn.execute(query + " ORDER BY id", args)
        ]

    def save_prices(self, prices: dict[str, float], time: int) -> None:
        """Keep the market's last prices and commit them."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO paper_prices (symbol, price, time) VALUES (?, ?, ?)",
            [(s, p, time) for s, p in prices.items()],
        )
        self.conn.commit()

    def load_prices(self) -> dict[str, float]:
        return {s: p for s, p in self.conn.execute("SELECT symbol, price FROM paper_prices")}
