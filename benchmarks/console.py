"""4. Console: what the Textual console costs and how much it keeps up with.

Runs the real console (`ginie_tui.app.make_app`) headless in this process:

- per-event cost of decoding a frame, applying it to the `Store`, and the whole path through
  the app (store, `StoreChanged` message, `LifecyclePanel` row update, refresh);
- events a second the console applies while no frame stalls past 50 ms, with a paced feed of
  real frames (decoded, applied, reported exactly as the network feed does);
- start-up to the first LIVE frame, and publish-to-store / -panel / -after-refresh latency, with
  the real network `Feed` against Ginie's server under the load of table 1: once with the
  console on a CPU of its own, once with no process pinned;
- memory of the store holding 10,000 lifecycle events (the store's limit);
- with the Market tab on screen (`market_run`): the paced feed at 1,000 events/s of which the
  shown symbol's klines and order books come 10 a second each and other symbols' mark prices
  40 a second, over two hours of candles and an open chain, at 200x60 (a chart of about
  166x50 cells, the costliest to draw), the console pinned to a CPU of its own: frame stalls,
  kline applied -> panel after screen refresh, kline applied -> chart drawn, chart builds.
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
from benchmarks.servers.control import SYMBOLS, lifecycle_data, now_ms
from ginie_protocol import Ack, decode_server, encode, make_event
from ginie_protocol.events import Chain, Kline, LifecycleEvent, MarkPrice, OrderBook
from ginie_tui.app import GinieApp, make_app
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import CommandRefused, Feed, FeedListener, FeedSettings
from ginie_tui.store import Applied, Store
from ginie_tui.widgets.chart import CandleChart
from ginie_tui.widgets.lifecycle import LifecyclePanel
from ginie_tui.widgets.market import MarketPanel

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


MARKET_SYMBOL = "BTCUSDT"
"""The symbol the Market tab shows in `market_run` (the first of the store's, sorted)."""


def _kline(open_time: int, close: float, volume: float, closed: bool) -> Kline:
    return Kline(
        symbol=MARKET_SYMBOL,
        open_time=open_time,
        close_time=open_time + 59_999,
        open=close - 5.0,
        high=close + 8.0,
        low=close - 9.0,
        close=close,
        volume=volume,
        closed=closed,
    )


def fill_market(store: Store, now: int) -> None:
    """Put two hours of the shown symbol's candles and one open chain on it into `store`."""
    start = now - now % 60_000 - 119 * 60_000
    for i in range(119):
        close = 65_000.0 + 40 * ((i * 7) % 13 - 6)
        store.apply_market(
            {"FUTURES_KLINE_UPDATE": [_kline(start + i * 60_000, close, 10.0, True).model_dump()]},
            now,
        )
    chain = Chain(
        chain_id="bench-chain",
        symbol=MARKET_SYMBOL,
        direction="LONG",
        mode="scalp",
        source="autopilot",
        strategy="ema_cross",
        status="open",
        entry_client_order_id="g-bench-E",
        quantity=0.01,
        remaining_qty=0.01,
        entry_price=65_000.0,
        take_profit_prices=[65_300.0, 65_500.0],
        stop_loss_price=64_700.0,
        opened_at=now - 600_000,
    )
    store.apply_event(make_event(chain, now, 1, "bench"), now, "live")


def market_frames(count: int, now: int) -> tuple[list[str], set[int]]:
    """`count` frames: every 100th a kline of the shown symbol (its volume numbers it), every
    100th (offset 50) its order book, every 25th a mark price of another symbol, the rest
    lifecycle events (seq from 2, after the chain). Also the numbers of the klines."""
    open_time = now - now % 60_000
    texts: list[str] = []
    klines: set[int] = set()
    seq = 2
    for n in range(count):
        if n % 100 == 0:
            model: Any = _kline(open_time, 65_000.0 + (n % 700), float(n), False)
            klines.add(n)
        elif n % 100 == 50:
            bids = [(64_990.0 - i, 1.0 + (n + i) % 7) for i in range(10)]
            asks = [(65_010.0 + i, 1.0 + (n * i) % 5) for i in range(10)]
            model = OrderBook(symbol=MARKET_SYMBOL, bids=bids, asks=asks, time=now + n)
        elif n % 25 == 0:
            symbol = SYMBOLS[1 + n % (len(SYMBOLS) - 1)]
            model = MarkPrice(
                symbol=symbol,
                mark_price=100.0 + n % 50,
                index_price=100.0,
                funding_rate=0.0001,
                next_funding_time=now + 3_600_000,
                time=now + n,
            )
        else:
            texts.append(
                encode(make_event(LifecycleEvent(**lifecycle_data(n, now)), now, seq, "bench"))
            )
            seq += 1
            continue
        texts.append(encode(make_event(model, now)))
    return texts, klines


class AppliedAt(Store):
    """A store that notes when each kline of the shown symbol was applied, by its number."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_ns: dict[int, int] = {}

    def apply_event(self, event: Any, now_ms: int, source: Any = "live") -> Applied:
        applied = super().apply_event(event, now_ms, source)
        if event.type == "FUTURES_KLINE_UPDATE" and event.data.symbol == MARKET_SYMBOL:
            self.applied_ns[int(event.data.volume)] = time.monotonic_ns()
        return applied


async def market_run(rate: float, seconds: float) -> dict[str, Any]:
    """The paced feed with the Market tab on screen (see the module docstring)."""
    now = now_ms()
    texts, _ = market_frames(int(rate * seconds), now)
    store = AppliedAt()
    fill_market(store, now)
    feed = PacedFeed(texts, rate)
    app = make_app(feed, store=store)
    panel_ns: list[int] = []
    chart_ns: list[int] = []
    async with app.run_test(headless=True, size=SIZE) as pilot:
        await pilot.press("5")
        chart = app.query_one(CandleChart)
        panel = app.query_one(MarketPanel)
        while not chart.settled:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.005)
        await pilot.pause()
        original_apply, original_show = panel.apply_change, chart._show_strips

        def after_refresh(applied: int) -> None:
            panel_ns.append(time.monotonic_ns() - applied)

        def timed_apply(change: Any) -> None:
            original_apply(change)
            klines = store.klines(MARKET_SYMBOL)
            if change.topic == "FUTURES_KLINE_UPDATE" and klines:
                applied = store.applied_ns.get(int(klines[-1].volume))
                if applied is not None:
                    panel.call_after_refresh(after_refresh, applied)

        def timed_show(strips: Any, figure: Any, size: Any) -> None:
            original_show(strips, figure, size)
            applied = store.applied_ns.get(int(figure.candles[-1].volume))
            if applied is not None:
                chart_ns.append(time.monotonic_ns() - applied)

        setattr(panel, "apply_change", timed_apply)  # noqa: B010 (an instance hook)
        setattr(chart, "_show_strips", timed_show)  # noqa: B010 (an instance hook)
        builds0 = CandleChart.builds
        probe = StallProbe(app)
        feed.go.set()
        cpu0 = time.process_time()
        await asyncio.wait_for(feed.done.wait(), seconds * 10 + 10)
        elapsed = time.monotonic() - feed.started
        cpu = time.process_time() - cpu0
        while not chart.settled:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.005)
        await pilot.pause()
        builds = CandleChart.builds - builds0
    gaps = sorted(probe.gaps_ms) or [0.0]
    return {
        "achieved": len(texts) / elapsed,
        "stall_p99_ms": gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))],
        "stall_max_ms": gaps[-1],
        "cpu_us_per_event": cpu / len(texts) * 1e6,
        "panel": sorted(panel_ns),
        "chart": sorted(chart_ns),
        "builds_per_s": builds / elapsed,
    }


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
    with pinned(console_placement()[1]):
        market = asyncio.run(market_run(1000, 5.0 if quick else 10.0))
    keeps_up = market["achieved"] >= 980 and market["stall_max_ms"] < STALL_LIMIT_MS
    group.add(
        measure="Market tab, paced 1,000/s, own CPU",
        value=market["achieved"],
        unit="events/s",
        detail=(
            f"app CPU {market['cpu_us_per_event']:.0f} us/event, stall p99 "
            f"{market['stall_p99_ms']:.1f} ms max {market['stall_max_ms']:.1f} ms, chart "
            f"{market['builds_per_s']:.1f} builds/s{'' if keeps_up else ' (falls behind)'}"
        ),
    )
    for key, label in (
        ("panel", "Market tab: kline -> after screen refresh"),
        ("chart", "Market tab: kline -> chart drawn"),
    ):
        values = market[key]
        group.add(
            measure=label,
            value=_pct(values, 0.99),
            unit="ms p99",
            detail=(
                f"p50 {_pct(values, 0.5):.2f} ms, max {_pct(values, 1.0):.1f} ms, n={len(values)}"
            ),
        )
    market_p99 = _pct(market["panel"], 0.99)
    group.notes.append(
        "target with the Market tab on screen: 1,000 events/s with frames under 50 ms "
        f"({'met' if keeps_up else 'NOT met'}, longest {market['stall_max_ms']:.1f} ms) and "
        f"kline -> panel p99 under 20 ms ({'met' if market_p99 < 20 else 'NOT met'}, "
        f"{market_p99:.2f} ms); 'kline' is when the feed applies it (in process, no server)"
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
