"""What every bench server shares: the event payloads, the load generator, the control port.

The load runs inside the server process, on the server's own event loop, so it measures the
server's publish path and nothing else. User events are `LIFECYCLE_EVENT`s of about 230 bytes
on the wire; each carries its publish time (`time.monotonic_ns()`, system-wide on Linux) in
`data.details.pub_ns`, so a client in another process can measure publish-to-decoded latency.

Control lines (one reply line each):
  conns                 -> number of subscribed connections
  load U M S            -> publish U user events/s and M market events/s for S seconds,
                           reply `done USER MARKET CPU_S WALL_S FIRST` (CPU time of this
                           process; FIRST is the number of the first user event, the users
                           taking them in turn)
  burst N               -> publish N user events at once (round-robin users), reply `ok`
  cpu                   -> process CPU time in seconds (all threads)
  rss                   -> resident set size in bytes
  quit                  -> stop the server
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from typing import Any, Protocol

USERS: tuple[str, ...] = tuple(f"bench{i:02d}" for i in range(50))
SYMBOLS: tuple[str, ...] = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT",
    "LINKUSDT", "DOTUSDT", "TRXUSDT", "MATICUSDT", "LTCUSDT", "BCHUSDT", "ATOMUSDT", "NEARUSDT",
    "APTUSDT", "ARBUSDT", "OPUSDT", "FILUSDT",
)  # fmt: skip
STEPS = ("entry_filled", "tp1_placed", "tp1_filled", "sl_moved", "tp2_filled", "closed")


class Fanout(Protocol):
    """A server under test, as the load generator sees it."""

    def connections(self) -> int:
        """Connections that completed their handshake and subscription."""

    async def publish_user(self, user: str, data: dict[str, Any]) -> None:
        """Publish one `LIFECYCLE_EVENT` with this `data` to `user`'s connections."""

    async def publish_market(self, data: dict[str, Any]) -> None:
        """Publish one `FUTURES_MARK_PRICE_UPDATE` with this `data` to every connection."""


def lifecycle_data(n: int, now_ms: int) -> dict[str, Any]:
    """The `data` of user event number `n`, stamped with its publish time."""
    symbol = SYMBOLS[n % len(SYMBOLS)]
    return {
        "id": n,
        "chain_id": f"ch-{n % 997:05d}",
        "symbol": symbol,
        "step": STEPS[n % len(STEPS)],
        "message": f"{symbol} take-profit filled at 43210.5",
        "details": {"pub_ns": time.monotonic_ns()},
        "time": now_ms,
    }


def mark_price_data(n: int, now_ms: int) -> dict[str, Any]:
    """The `data` of market tick number `n` (symbols in turn)."""
    return {
        "symbol": SYMBOLS[n % len(SYMBOLS)],
        "mark_price": 43210.5 + (n % 100) * 0.1,
        "index_price": 43209.9,
        "funding_rate": 0.0001,
        "next_funding_time": now_ms + 3_600_000,
        "time": now_ms,
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LoadGenerator:
    """Publishes paced loads and bursts into a `Fanout`, numbering events across calls."""

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.user_events = 0
        self.market_events = 0

    async def burst(self, count: int) -> None:
        for _ in range(count):
            await self._user_event()

    async def paced(self, user_rate: float, market_rate: float, seconds: float) -> tuple[int, int]:
        """Publish at the given rates, catching up each millisecond tick; returns the counts."""
        start = time.monotonic()
        users0, market0 = self.user_events, self.market_events
        while (elapsed := time.monotonic() - start) < seconds:
            while self.user_events - users0 < int(elapsed * user_rate):
                await self._user_event()
            while self.market_events - market0 < int(elapsed * market_rate):
                await self.fanout.publish_market(mark_price_data(self.market_events, now_ms()))
                self.market_events += 1
            await asyncio.sleep(0.001)
        return self.user_events - users0, self.market_events - market0

    async def _user_event(self) -> None:
        n = self.user_events
        self.user_events += 1
        await self.fanout.publish_user(USERS[n % len(USERS)], lifecycle_data(n, now_ms()))


def raise_fd_limit() -> None:
    """Allow as many open files as the hard limit permits (1,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def serve_control(fanout: Fanout, port: int, stop: asyncio.Event) -> asyncio.Server:
    """Start the control port on 127.0.0.1 and print the ready line with both ports."""
    load = LoadGenerator(fanout)

    async def answer(line: str) -> str:
        words = line.split()
        match words:
            case ["conns"]:
                return str(fanout.connections())
            case ["cpu"]:
                return repr(time.process_time())
            case ["rss"]:
                return str(rss_bytes())
            case ["burst", count]:
                await load.burst(int(count))
                return "ok"
            case ["load", user_rate, market_rate, seconds]:
                cpu0, wall0 = time.process_time(), time.monotonic()
                first = load.user_events
                users, market = await load.paced(
                    float(user_rate), float(market_rate), float(seconds)
                )
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                return f"done {users} {market} {cpu!r} {wall!r} {first}"
            case ["quit"]:
                stop.set()
                return "bye"
        return f"error unknown command {line!r}"

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := (await reader.readline()).decode():
                writer.write((await answer(line.strip()) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    control_port = server.sockets[0].getsockname()[1]
    print(f"ready {port} {control_port}", flush=True)
    return server
