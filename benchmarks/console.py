"""4. Console: what the Textual console costs and how much it keeps up with.

Runs the real console (`ginie_tui.app.make_app`) headless in this process:

- per-event cost of decoding a frame, applying it to the `Store`, and the whole path through
  the app (store, `StoreChanged` message, `LifecyclePanel` row update, refresh);
- events a second the console applies while no frame stalls past 50 ms, with a paced feed of
  real frames (decoded, applied, reported exactly as the network feed does);
- start-up to the first LIVE frame, and publish-to-store / -panel / -after-refresh latency, with
  the real network `Feed` against Ginie's server under the load of table 1: once with the
  console on a CPU of its own, once with no process pinned;
- memory of the store holding 10,000 lifecycle events (the store's limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
import tracemalloc
from collections.abc import Iterator, Mapping
from typing import Any

from benchmarks.harness import Placement, bench_server, console_placement, run_latency
from benchmarks.report import Group
from benchmarks.servers.control import lifecycle_data, now_ms
from ginie_protocol import Ack, decode_server, encode, make_event
from ginie_protocol.events import LifecycleEvent
from ginie_tui.app import GinieApp, make_app
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import CommandRefused, Feed, FeedListener, FeedSettings
from ginie_tui.store import Applied, Store
from ginie_tui.widgets.lifecycle import LifecyclePanel

SIZE = (200, 60)
STALL_LIMIT_MS = 50.0


def frames(count: int, epoch: str = "bench") -> list[str]:
    """`count` consecutive LIFECYCLE_EVENT frames of one user, as the hub encodes them."""
    return [
        encode(make_event(LifecycleEvent(**lifecycle_data(n, now_ms())), now_ms(), n + 1, epoch))
        for n in range(count)
    ]


class PacedFeed:
    """A feed that decodes and applies pre-encoded frames at `rate` a second, like `Feed` does,
    from when it is told to `go` (after the app's start-up, which is measured on its own)."""

    def __init__(self, texts: list[str], rate: float) -> None:
        self.texts, self.rate = texts, rate
        self.applied = 0
        self.started = 0.0
        self.go = asyncio.Event()
        self.done = asyncio.Event()

    def status(self) -> ConnectionStatus:
        return ConnectionStatus(ConnState.LIVE, latency_ms=0.0)

    def show_market(self, symbol: str) -> None:
        """This feed carries lifecycle events only; there is no market history to bring."""

    async def command(self, name: str, args: Mapping[str, Any]) -> Ack:
        raise CommandRefused("a benchmark feed takes no commands")

    async def run(self, store: Store, listener: FeedListener) -> None:
        await self.go.wait()
        self.started = time.monotonic()
        while self.applied < len(self.texts):
            due = min(len(self.texts), int((time.monotonic() - self.started) * self.rate) + 1)
            while self.applied < due:
                event = decode_server(self.texts[self.applied])
                applied = store.apply_event(event, now_ms(), "live")
                if applied.change is not None:
                    listener.feed_changes([applied.change])
                self.applied += 1
            await asyncio.sleep(0.001)
        self.done.set()
        await asyncio.Event().wait()


class StallProbe:
    """Largest gaps between the ticks of a 10 ms timer on the app: how long a frame stalled."""

    def __init__(self, app: GinieApp) -> None:
        self.gaps_ms: list[float] = []
        self._last = time.monotonic()
        app.set_interval(0.01, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.gaps_ms.append((now - self._last) * 1000)
        self._last = now


def per_event_costs(count: int) -> dict[str, float]:
    """Microseconds per event: decode alone, and decode + store apply."""
    texts = frames(count)
    t0 = time.perf_counter()
    events = [decode_server(t) for t in texts]
    decode_us = (time.perf_counter() - t0) / count * 1e6
    store = Store()
    t0 = time.perf_counter()
    for event in events:
        store.apply_event(event, 0, "live")
    apply_us = (time.perf_counter() - t0) / count * 1e6
    return {"decode_us": decode_us, "store_apply_us": apply_us}


def store_memory(count: int = 10_000) -> float:
    """Bytes the store holds for `count` lifecycle events (tracemalloc, after decoding)."""
    texts = frames(count)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = Store()
    for text in texts:
        store.apply_event(decode_server(text), 0, "live")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    if len(store.items("LIFECYCLE_EVENT")) != count:
        raise RuntimeError("the store did not keep every lifecycle event")
    return float(held)


async def paced_run(rate: float, seconds: float) -> dict[str, float]:
    """Run the app with a paced feed; the achieved rate, stalls and the per-event app cost.

    The rate is the events the lifecycle panel holds over the time until it holds the last
    one; the screen refresh after that (one frame, about 45 ms headless) is latency, not
    throughput, and is not counted against the rate (counted, it alone is 3% of a 1.5 s run)."""
    count = int(rate * seconds)
    texts = frames(count)
    last_key = str(decode_server(texts[-1]).data.id)
    feed = PacedFeed(texts, rate)
    app = make_app(feed)
    async with app.run_test(headless=True, size=SIZE) as pilot:
        table = app.query_one(LifecyclePanel).query_one("KeyedTable, RowLog")
        await pilot.pause()
        probe = StallProbe(app)
        feed.go.set()
        cpu0 = time.process_time()
        await asyncio.wait_for(feed.done.wait(), seconds * 10 + 10)
        while last_key not in table.keys:  # type: ignore[attr-defined]  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - feed.started
        cpu = time.process_time() - cpu0
        await pilot.pause()
        shown = table.row_count  # type: ignore[attr-defined]
    gaps = sorted(probe.gaps_ms) or [0.0]
    return {
        "rate": rate,
        "achieved": count / elapsed,
        "stall_p99_ms": gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))],
        "stall_max_ms": gaps[-1],
        "cpu_us_per_event": cpu / count * 1e6,
        "rows_shown": shown,
    }


class TimedStore(Store):
    """A store that notes, for each lifecycle event it applies, the time since its publish."""

    def __init__(self) -> None:
        super().__init__()
        self.latencies_ns: list[int] = []

    def apply_event(self, event: Any, now_ms: int, source: Any = "live") -> Applied:
        applied = super().apply_event(event, now_ms, source)
        if applied.change is not None and event.type == "LIFECYCLE_EVENT":
            self.latencies_ns.append(time.monotonic_ns() - int(event.data.details["pub_ns"]))
        return applied


def watch_panel(app: GinieApp, store: Store) -> tuple[list[int], list[int]]:
    """Note publish-to-panel-updated and publish-to-after-refresh times of lifecycle rows."""
    panel = app.query_one(LifecyclePanel)
    updated: list[int] = []
    refreshed: list[int] = []
    original = panel.apply_change

    def after_refresh(published: list[int]) -> None:
        now = time.monotonic_ns()
        refreshed.extend(now - p for p in published)

    def timed(change: Any) -> None:
        original(change)
        now = time.monotonic_ns()
        published = [
            int(store.get("LIFECYCLE_EVENT", key).details["pub_ns"]) for key in change.keys
        ]
        updated.extend(now - p for p in published)
        panel.call_after_refresh(after_refresh, published)

    setattr(panel, "apply_change", timed)  # noqa: B010 (an instance hook on a bound method)
    return updated, refreshed


async def live_run(seconds: float, own_cpu: bool) -> dict[str, Any]:
    """The real console and `Feed` against Ginie's server while 100 clients get table 1's load.

    With `own_cpu`, the console runs on a CPU of its own (`console_placement`); otherwise no
    process is pinned and the console shares both CPUs with the server and the load's clients."""
    placement, console_cpus = console_placement() if own_cpu else (Placement(), None)
    with bench_server("ginie", cpus=placement.server) as server:
        assert server.tokens is not None
        token = json.loads(server.tokens.read_text())["bench00"]
        store = TimedStore()
        feed = Feed(FeedSettings(url=f"http://127.0.0.1:{server.port}", token=token))
        app = make_app(feed, store=store)
        started = time.monotonic()
        with pinned(console_cpus):
            async with app.run_test(headless=True, size=SIZE) as pilot:
                while not app.status.live:
                    if time.monotonic() - started > 30:
                        raise TimeoutError("the console did not become LIVE")
                    await asyncio.sleep(0.002)
                await pilot.pause()
                startup_s = time.monotonic() - started
                updated, refreshed = watch_panel(app, store)
                probe = StallProbe(app)
                load = await asyncio.to_thread(
                    run_latency, server, seconds=seconds, cpus=placement.clients
                )
                await pilot.pause()
    return {
        "placement": (
            f"console on CPU {','.join(map(str, sorted(console_cpus)))}, {placement.describe()}"
            if console_cpus
            else "not pinned"
        ),
        "startup_s": startup_s,
        "store": sorted(store.latencies_ns),
        "panel": sorted(updated),
        "refresh": sorted(refreshed),
        "stall_max_ms": max(probe.gaps_ms, default=0.0),
        "client_p99_ms": load["p99_ms"],
    }


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run this thread (the console's event loop) on `cpus` for the block (None: as it is)."""
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] / 1e6


def run(quick: bool) -> Group:
    group = Group(
        name="console",
        title="4. Console (Textual, headless): cost, throughput, start-up, latency, memory",
        columns=["measure", "value", "unit", "detail"],
    )
    costs = per_event_costs(2_000 if quick else 20_000)
    group.add(measure="decode one frame", value=costs["decode_us"], unit="us")
    group.add(measure="store apply one event", value=costs["store_apply_us"], unit="us")

    rates = (500, 1000, 2000, 4000) if quick else (500, 1000, 2000, 4000, 8000)
    seconds = 1.5 if quick else 4.0
    best = 0.0
    for rate in rates:
        result = asyncio.run(paced_run(rate, seconds))
        keeps_up = result["achieved"] >= 0.98 * rate and result["stall_max_ms"] < STALL_LIMIT_MS
        if keeps_up:
            best = max(best, rate)
        group.add(
            measure=f"paced feed {rate:,}/s",
            value=result["achieved"],
            unit="events/s",
            detail=(
                f"app CPU {result['cpu_us_per_event']:.0f} us/event, stall p99 "
                f"{result['stall_p99_ms']:.1f} ms max {result['stall_max_ms']:.1f} ms"
                f"{'' if keeps_up else ' (falls behind)'}"
            ),
        )
    group.add(
        measure="sustained, frames < 50 ms",
        value=best,
        unit="events/s",
        detail=f"target 1,000/s: {'met' if best >= 1000 else 'NOT met'}",
    )

    runs = [asyncio.run(live_run(4.0 if quick else 10.0, own_cpu)) for own_cpu in (True, False)]
    group.add(measure="start-up to first LIVE frame", value=runs[0]["startup_s"] * 1000, unit="ms")
    for live, where in zip(runs, ("own CPU", "unpinned"), strict=True):
        for key, label in (
            ("store", "publish -> store applied"),
            ("panel", "publish -> panel row updated"),
            ("refresh", "publish -> after screen refresh"),
        ):
            values = live[key]
            group.add(
                measure=f"{label}, {where}",
                value=_pct(values, 0.99),
                unit="ms p99",
                detail=(
                    f"p50 {_pct(values, 0.5):.2f} ms, max {_pct(values, 1.0):.1f} ms, "
                    f"n={len(values)}"
                ),
            )
    own, shared = (_pct(live["refresh"], 0.99) for live in runs)
    group.notes.append(
        f"target: publish -> panel p99 within one frame (< 20 ms): "
        f"{'met' if own < 20 else 'NOT met'} with the console on a CPU of its own "
        f"({own:.2f} ms after refresh); unpinned, sharing the CPUs with the load: "
        f"{'met' if shared < 20 else 'NOT met'} ({shared:.2f} ms)"
    )
    held = store_memory()
    group.add(
        measure="store with 10,000 lifecycle events",
        value=held / 2**20,
        unit="MiB",
        detail=f"{held / 10_000:.0f} B/event",
    )
    group.notes.append(
        "the live rows: one console (the real Feed, user bench00) beside 100 client connections "
        f"under table 1's load; own CPU: {runs[0]['placement']}; stalls during the runs max "
        f"{runs[0]['stall_max_ms']:.1f} and {runs[1]['stall_max_ms']:.1f} ms"
    )
    return group
