"""7. The journal's commit: how long `Journal.commit` takes on SQLite and on PostgreSQL.

In process, a `Hub` on each backend (nothing connected): each unit of work is N state writes
(`TradingStore.put` of an item, an upsert of `trading_state`) and N `LIFECYCLE_EVENT`s
(`hub.publish`, over the bench users in turn), staged on the event loop and committed by
`hub.flush()`, which is `Journal.commit` and an empty fan-out; each commit is timed with
`perf_counter`. N is 1, 10 and 100. The backends:

- SQLite as the server runs it: WAL, `synchronous=NORMAL` (no flush at a commit), the
  WAL checkpointer thread;
- PostgreSQL with its default durability: the WAL flushed at each commit;
- PostgreSQL with `synchronous_commit=off` (the WAL flushed within 3 x `wal_writer_delay`,
  lost only if PostgreSQL or the machine crashes: closer to SQLite's `synchronous=NORMAL`);
- PostgreSQL as a cluster node commits: the engine lease's fence (`ginie_fence(token)`) first
  in each transaction, fsync as by default.

Nothing is pinned: the runner and PostgreSQL share both CPUs. Without PostgreSQL on the
machine its rows say "not run" and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.cluster import Services, services
from benchmarks.harness import percentile
from benchmarks.report import Group
from benchmarks.servers.control import USERS, lifecycle_data, now_ms
from ginie_protocol.events import LifecycleEvent
from ginie_server.clock import SystemClock
from ginie_server.hub import Hub
from ginie_server.storage.backend import Database
from ginie_server.storage.db import WalCheckpointer, open_database
from ginie_server.storage.trading import TradingStore

SIZES = (1, 10, 100)
BACKENDS = ("sqlite", "postgresql", "postgresql-async", "postgresql-fenced")
LABEL = {
    "sqlite": "SQLite (WAL, synchronous=NORMAL)",
    "postgresql": "PostgreSQL (WAL flushed at commit)",
    "postgresql-async": "PostgreSQL, synchronous_commit=off",
    "postgresql-fenced": "PostgreSQL, cluster node (fence first)",
}
WARMUP = 20
"""Commits of each size made and not counted, before the counted ones."""


def unit_label(size: int) -> str:
    return "1 state write + 1 event" if size == 1 else f"{size} + {size}"


@contextlib.contextmanager
def opened(backend: str, running: Services) -> Iterator[Hub]:
    """A hub on a new, empty database of `backend` (and its engine tables); closed after."""
    with contextlib.ExitStack() as stack:
        fence = None
        if backend == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-commit-"))
            sqlite = open_database(Path(folder) / "commit.db")
            stack.callback(sqlite.close)
            checkpointer = WalCheckpointer(sqlite)
            checkpointer.start()
            stack.callback(checkpointer.stop)
            db: Database = sqlite
        else:
            from ginie_server.cluster.lease import EngineLease, LeaseFence
            from ginie_server.storage.postgres import open_postgres

            assert running.pg is not None
            settings = {"synchronous_commit": "off"} if backend == "postgresql-async" else None
            url = running.pg.database(settings)
            postgres = open_postgres(url)
            stack.callback(postgres.close)
            db = postgres
            if backend == "postgresql-fenced":
                lease = EngineLease(url, "bench-commit", seconds=600.0)
                stack.callback(lease.close)
                token = lease.try_acquire()
                assert token is not None
                fence = LeaseFence(token)
        TradingStore(db)  # creates the engine's tables
        hub = Hub(db, clock=SystemClock())
        hub.journal.fence = fence
        stack.callback(hub.close)
        yield hub


def stager(hub: Hub) -> Callable[[int], None]:
    """A function that stages `size` state writes and as many events on `hub`."""
    numbers = itertools.count()

    def stage(size: int) -> None:
        for _ in range(size):
            n = next(numbers)
            user = USERS[n % len(USERS)]
            event = LifecycleEvent(**lifecycle_data(n, now_ms()))
            hub.write(TradingStore.put(user, "CHAIN_UPDATE", event.chain_id, event))
            hub.publish(user, event)

    return stage


async def commit_times(hub: Hub, size: int, count: int, warmup: int = WARMUP) -> list[float]:
    """Seconds of each of `count` commits of units of `size` (after `warmup` uncounted ones).

    Runs on the event loop, as the server's commits do: `publish` schedules a commit with
    `call_soon`, which `flush` (right after the staging, with no await between) replaces."""
    stage = stager(hub)
    times = []
    for i in range(warmup + count):
        stage(size)
        started = time.perf_counter()
        hub.flush()
        took = time.perf_counter() - started
        if hub.journal.pending:
            raise RuntimeError(f"a commit of {size} + {size} failed")
        if i >= warmup:
            times.append(took)
        await asyncio.sleep(0)
    return times


async def measure(backend: str, running: Services, count: int) -> dict[int, list[float]]:
    """Commit times of each size in `SIZES` on a new database of `backend`, sorted."""
    with opened(backend, running) as hub:
        return {size: sorted(await commit_times(hub, size, count)) for size in SIZES}


def run(quick: bool) -> Group:
    count = 300 if quick else 1000
    group = Group(
        name="commit",
        title=f"7. Journal commit, in process: units of state writes + events ({count} each)",
        columns=["backend", "unit of work", "median ms", "p99 ms", "max ms", "commits"],
    )
    with services(None, redis=False) as running:
        for backend in BACKENDS:
            reason = running.pg_missing if backend != "sqlite" else None
            if reason is not None:
                group.add(backend=LABEL[backend], commits=f"not run: {reason}")
                continue
            found = asyncio.run(measure(backend, running, count))
            for size, times in found.items():
                group.add(
                    **{
                        "backend": LABEL[backend],
                        "unit of work": unit_label(size),
                        "median ms": 1e3 * percentile(times, 0.50),
                        "p99 ms": 1e3 * percentile(times, 0.99),
                        "max ms": 1e3 * times[-1],
                        "commits": len(times),
                    }
                )
        versions = "; ".join(running.versions)
    group.notes.append(
        "hub.write(TradingStore.put(...)) and hub.publish(user, LIFECYCLE_EVENT) N times, then "
        "hub.flush(), timed; a new database per backend; nothing pinned"
    )
    if versions:
        group.notes.append(f"{versions} on 127.0.0.1, its data folder and SQLite's in /tmp")
    return group
