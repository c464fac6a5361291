"""The seeded chaos run: a paper server trading at speed, three headless consoles (the real
feed and store), each behind its own fault proxy, and a hundred seeded faults: cuts, stalls,
slowed links and partitions that refuse the WebSocket while REST still passes.

At the end every console's store equals its user's `/api/snapshot`, taken at a barrier; the
seq audit shows no user event lost, repeated or applied out of order; and fallback polls
happened only while a console was not LIVE, never sooner than the set interval apart, each
one counted by the server's own `/api/metrics`.

The faults are paced by a referee: a direct connection of a fourth user, whose events tick
the chaos clock, so the schedule follows the server's progress rather than wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ginie_protocol import USER_TYPES
from ginie_tui.connection import ConnState
from ginie_tui.feed import FeedSettings
from tests.faults.consoles import HeadlessConsole, snapshot_state
from tests.faults.proxy import Direction, FaultProxy, ProxiedConnection, is_websocket_upgrade
from tests.harness import ProtocolClient, ServerProcess, connect_client, wait_for

SEED = 20_261_125
FAULTS = 100
USERS = ("ursula", "victor", "wanda")
POLL_INTERVAL_S = 1.0
GRACE_S = 0.5


def create_token(db: Path, user: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ginie_server", "token", "create", user, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Referee:
    """A direct connection whose user-event count is the chaos clock."""

    client: ProtocolClient
    ticks: int = 0

    async def run(self) -> None:
        while True:
            message = await self.client.recv(timeout=30)
            if getattr(message, "seq", None) is not None:
                self.ticks += 1

    async def after(self, ticks: int) -> None:
        """Wait until `ticks` more user events have happened on the server."""
        target = self.ticks + ticks
        await wait_for(lambda: self.ticks >= target, timeout=20)


@dataclass
class Seat:
    """One console, its user, token and proxy."""

    user: str
    token: str
    proxy: FaultProxy
    console: HeadlessConsole
    busy: bool = False
    faults: list[str] = field(default_factory=list)

    def socket(self) -> ProxiedConnection | None:
        """The console's open WebSocket through the proxy, if it has one."""
        for conn in reversed(self.proxy.live):
            if is_websocket_upgrade(conn.first_bytes):
                return conn
        return None


async def fault(seat: Seat, kind: str, length: int, referee: Referee) -> None:
    """Apply one fault to a seat's link for `length` referee ticks, then heal it."""
    seat.busy = True
    seat.faults.append(kind)
    try:
        conn = seat.socket()
        if kind == "cut":
            if conn is not None:
                conn.cut()
        elif kind == "partition":
            seat.proxy.refuse_new(is_websocket_upgrade)
            if conn is not None:
                conn.cut()
            await referee.after(length)
            seat.proxy.admit_all()
        elif conn is not None:
            if kind == "stall":
                conn.stall(Direction.DOWN if length % 2 else Direction.BOTH)
            else:
                conn.slow(8 * 1024, Direction.DOWN)
            await referee.after(length)
            conn.heal()
    finally:
        seat.busy = False


async def run_chaos(seats: list[Seat], referee: Referee, rng: random.Random) -> int:
    """Apply FAULTS seeded faults; returns how many were partitions."""
    running: set[asyncio.Task[None]] = set()
    partitions = 0
    for _ in range(FAULTS):
        seat = rng.choice(seats)
        kind = rng.choices(["cut", "stall", "slow", "partition"], weights=[4, 4, 1, 1])[0]
        if seat.busy:
            kind = "cut"
        length = rng.randint(30, 60) if kind == "partition" else rng.randint(2, 20)
        partitions += kind == "partition"
        task = asyncio.create_task(fault(seat, kind, length, referee))
        running.add(task)
        task.add_done_callback(running.discard)
        await referee.after(rng.randint(1, 5))
    await asyncio.gather(*running)
    return partitions


async def barrier_snapshot(seat: Seat, base_url: str) -> dict[str, object]:
    """Hold the console's socket, take the snapshot, and have the console copy its store as
    it reaches the snapshot's `seq`; returns the snapshot."""
    conn = seat.socket()
    assert conn is not None
    conn.stall(Direction.DOWN)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {seat.token}"}
    ) as http:
        answer = await http.get("/api/snapshot", params={"topics": ",".join(sorted(USER_TYPES))})
    snapshot: dict[str, object] = answer.json()
    recorder = seat.console.recorder
    recorder.capture_at = int(str(snapshot["seq"]))
    recorder.check_capture()
    conn.resume()
    await wait_for(lambda: recorder.captured is not None, timeout=10)
    return snapshot


async def metrics_of(base_url: str, token: str) -> dict[str, object]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        metrics: dict[str, object] = (await http.get("/api/metrics")).json()
    return metrics


async def test_chaos_run_loses_nothing_and_polls_only_when_not_live(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "ginie.db"
    server = ServerProcess(db, "--exchange", "paper", "--speed", "1000", "--seed", str(SEED))
    server.start()
    seats: list[Seat] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        tokens = {user: create_token(db, user) for user in (*USERS, "referee")}
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        for number, user in enumerate(USERS):
            proxy = FaultProxy(host, port)
            await proxy.start()
            settings = FeedSettings(
                url=proxy.url,
                token=tokens[user],
                poll_interval_s=POLL_INTERVAL_S,
                grace_s=GRACE_S,
                backoff_base_s=0.05,
                backoff_cap_s=0.4,
                http_timeout_s=5.0,
                seed=SEED + number,
            )
            seats.append(Seat(user, tokens[user], proxy, HeadlessConsole(settings)))
        async with connect_client(server.ws_url, tokens["referee"]) as client:
            await client.subscribe(["*"])
            referee = Referee(client)
            tasks.append(asyncio.create_task(referee.run()))
            for seat in seats:
                seat.console.start()
            await wait_for(lambda: all(s.console.live for s in seats), timeout=20)

            async with asyncio.timeout(100):
                partitions = await run_chaos(seats, referee, rng)

            await wait_for(lambda: all(s.console.live for s in seats), timeout=20)
            snapshots = [await barrier_snapshot(seat, server.url) for seat in seats]
            metrics = [await metrics_of(server.url, seat.token) for seat in seats]
    finally:
        for seat in seats:
            await seat.console.stop()
            await seat.proxy.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        server.stop()

    assert sum(len(s.faults) for s in seats) == FAULTS
    assert partitions > 0
    for seat, snapshot, counted in zip(seats, snapshots, metrics, strict=True):
        console = seat.console
        assert console.audit() == [], seat.user
        assert console.recorder.captured == snapshot_state(snapshot["data"]), seat.user  # type: ignore[arg-type]
        assert console.store.epoch == snapshot["epoch"]
        served = snapshot["data"]["LIFECYCLE_EVENT"]  # type: ignore[index]
        held = {
            step.id: step.model_dump(mode="json") for step in console.store.items("LIFECYCLE_EVENT")
        }
        assert served and all(
            held[item["id"]] == {k: v for k, v in item.items() if k != "seq"} for item in served
        ), seat.user

        polls = console.polls
        assert all(p.state is ConnState.POLLING for p in polls), seat.user
        gaps = [b.at_ms - a.at_ms for a, b in itertools.pairwise(polls)]
        assert all(gap >= POLL_INTERVAL_S * 1000 for gap in gaps), (seat.user, gaps)
        rest_calls = counted["rest_calls"]
        assert isinstance(rest_calls, dict)
        assert rest_calls.get("/api/snapshot") == len(console.syncs) + 1, seat.user
    assert sum(len(s.console.polls) for s in seats) >= partitions
    assert all(
        ConnState.POLLING in s.console.recorder.states for s in seats if "partition" in s.faults
    )
