"""A trading engine on a paper exchange, driven by a manual clock, publishing to a recorder
that hands everything to a real hub, so state and events commit as they do in the server."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ginie_protocol.commands import parse_command_args
from ginie_protocol.events import WireModel, spec_of
from ginie_server.clock import ManualClock
from ginie_server.engine import AccountBook, TradingEngine, build_paper_engine
from ginie_server.exchange.paper import PaperExchange
from ginie_server.hub import Hub
from ginie_server.sources import MarketData
from ginie_server.storage.db import StateWrite, open_database


@dataclass
class Recorder:
    """A Publisher that keeps what it is given and passes it on to a real hub."""

    hub: Hub
    events: list[tuple[str, str, WireModel]] = field(default_factory=list)
    market: list[MarketData] = field(default_factory=list)

    def publish(self, user: str, data: WireModel) -> None:
        self.events.append((user, spec_of(data).topic, data))
        self.hub.publish(user, data)

    def write(self, op: StateWrite) -> None:
        self.hub.write(op)

    def publish_market(self, data: MarketData) -> None:
        self.market.append(data)

    def of(self, user: str, *types: str) -> list[WireModel]:
        return [d for u, t, d in self.events if u == user and (not types or t in types)]


class Rig:
    """One engine and its paper market on a manual clock: `run(seconds)` moves both."""

    def __init__(self, db_path: Path, seed: int = 4, speed: float = 60.0) -> None:
        self.db_path = db_path
        self.seed = seed
        self.speed = speed
        self.clock = ManualClock()
        self.conn = open_database(db_path)
        self.hub = Hub(self.conn, clock=self.clock)
        self.recorder = Recorder(self.hub)
        self.engine: TradingEngine = build_paper_engine(
            self.conn, self.clock, seed=seed, speed=speed, loop_seconds=None
        )

    @property
    def paper(self) -> PaperExchange:
        assert isinstance(self.engine.exchange, PaperExchange)
        return self.engine.exchange

    async def start(self, *users: str) -> None:
        await self.engine.start(self.recorder)
        for user in users:
            self.engine.attach_user(user)

    async def run(self, seconds: int) -> None:
        """Let `seconds` of server time pass, one second at a time."""
        for _ in range(seconds):
            self.clock.advance(1_000)
            self.paper.tick()
            await self.engine.pump()

    async def run_until(self, done: object, limit: int = 3_600) -> None:
        """Run second by second until `done()` is true; fails after `limit` seconds."""
        for _ in range(limit):
            if done():  # type: ignore[operator]
                return
            await self.run(1)
        raise AssertionError(f"not done after {limit} simulated seconds")

    async def command(self, user: str, name: str, **args: object) -> dict[str, object]:
        return await self.engine.commands[name](user, parse_command_args(name, dict(args)))

    def book(self, user: str) -> AccountBook:
        book = self.engine.book(user)
        assert book is not None, f"the engine holds no account of {user}"
        return book

    def committed(self) -> sqlite3.Connection:
        """The database as a reader sees it once the hub has committed (as REST reads do)."""
        self.hub.flush()
        return self.conn

    async def close(self) -> None:
        await self.engine.stop()
        self.hub.close()
        self.conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ginie.db"


@pytest.fixture
async def rig(db_path: Path) -> AsyncIterator[Rig]:
    r = Rig(db_path)
    yield r
    await r.close()
