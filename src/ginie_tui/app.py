"""The console app: one store, one feed worker, six tabs of panels, the command palette.

Data flow: the feed (a worker, the only I/O) applies events and snapshots to the store and
reports changes as small messages; the app routes each change to the panels that render its
topic. Market changes come in bursts, so their message replaces a queued one (`can_replace`)
and the panels render the latest. Only the panels of the tab on screen render a change; the
others render everything from the store when their tab is shown, so a hidden panel costs no
frames. A one-second tick re-derives the connection status and the freshness marks
from the clock; it never talks to the server.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Footer, TabbedContent, TabPane

from ginie_protocol import (
    SPECS,
    TRADING_COMMANDS,
    CommandArgsError,
    Scope,
    Topic,
    parse_command_args,
)
from ginie_tui.clock import Clock, SystemClock
from ginie_tui.connection import ConnectionStatus
from ginie_tui.feed import CommandRefused, FeedPort
from ginie_tui.palette import GinieCommands, PaletteEntry
from ginie_tui.screens.autopilot import AutopilotPane
from ginie_tui.screens.market import MarketPane
from ginie_tui.screens.modals import ConfirmModal, PendingSignalsModal, RulesModal
from ginie_tui.screens.pnl import PnlPane
from ginie_tui.screens.safety import SafetyPane
from ginie_tui.screens.system import SystemPane
from ginie_tui.screens.trading import TradingPane
from ginie_tui.store import Change, Source, Store
from ginie_tui.widgets.base import CommandRequested, Panel, fmt_price
from ginie_tui.widgets.connection_details import ConnectionPanel
from ginie_tui.widgets.indicator import ConnectionIndicator
from ginie_tui.widgets.market import MarketPanel
from ginie_tui.widgets.news import NewsPanel
from ginie_tui.widgets.positions import PositionsPanel
from ginie_tui.widgets.signals import SignalsPanel

NEWS_INTERVAL_S = 180.0

GC_THRESHOLDS = (2_000, 10, 100)
"""Garbage collection while the console runs. Full collections scan every object the process
holds and stopped frames for 40 to 90 ms under a stream of events; so the objects of the
start-up are frozen out of them (`gc.freeze` on mount) and they come 10x less often than
Python's default (700, 10, 10). The young generation is collected every 2,000 objects: at
10,000 a middle-generation pass scanned up to 100,000 survivors and took 25 to 37 ms, at 2,000
it takes 3 to 5 ms."""

GROUPS = (
    ("trading", "Trading"),
    ("autopilot", "Autopilot"),
    ("safety", "Safety"),
    ("pnl", "P&L"),
    ("market", "Market"),
    ("system", "System"),
)


@dataclass(frozen=True)
class ConsoleSettings:
    """What the console shows besides the feed's data."""

    server: str = ""
    poll_interval_s: float = 60.0
    news_url: str | None = None
    news_interval_s: float = NEWS_INTERVAL_S
    strategies_path: Path | None = None
    tick_s: float = 1.0


class StoreChanged(Message):
    """User topics changed in the store; the changes wait in the app until this is handled,
    so every change reported while it is queued is rendered with it, as one batch."""


class MarketChanged(Message):
    """Market data changed; a burst collapses into one (the panels read the latest)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MarketChanged)


class StatusChanged(Message):
    """The connection status changed; only the newest matters."""

    def __init__(self, status: ConnectionStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusChanged)


class FeedProblem(Message):
    """The feed met something wrong and carried on."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class GinieApp(App[None]):
    """The Ginie console. Build it with `make_app`."""

    CSS_PATH = "ginie.tcss"
    TITLE = "Ginie"
    COMMANDS = App.COMMANDS | {GinieCommands}
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (100, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(n), f"group('{key}')", title)
            for n, (key, title) in enumerate(GROUPS, start=1)
        ),
        Binding("s", "pending", "Signals"),
        Binding("q", "quit", "Quit"),
    ]

    _indicator: ConnectionIndicator
    _connection: ConnectionPanel
    _tabs: TabbedContent
    """The always-visible indicator, the connection details and the tabs (found on mount)."""

    def __init__(
        self, feed: FeedPort, store: Store, clock: Clock, settings: ConsoleSettings
    ) -> None:
        super().__init__()
        self.feed = feed
        self.store = store
        self.clock = clock
        self.settings = settings
        self.status = feed.status()
        self._by_topic: dict[Topic, list[Panel]] = {}
        self._panels: list[Panel] = []
        self._tab_of: dict[int, str] = {}
        """The id of each panel's tab, by the panel's id."""
        self._breaker_state: str | None = None
        self._unrendered: list[Change] = []
        """Changes reported by the feed and not yet rendered (one StoreChanged is queued)."""
        self._gc_thresholds = gc.get_threshold()

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield ConnectionIndicator()
        with TabbedContent(initial="trading"):
            yield TradingPane("1 Trading", self.store, self.clock, id="trading")
            yield AutopilotPane("2 Autopilot", self.store, self.clock, id="autopilot")
            yield SafetyPane("3 Safety", self.store, self.clock, id="safety")
            yield PnlPane("4 P&L", self.store, self.clock, id="pnl")
            yield MarketPane("5 Market", self.store, self.clock, id="market")
            yield SystemPane(
                "6 System",
                self.store,
                self.clock,
                id="system",
                server=self.settings.server,
                poll_interval_s=self.settings.poll_interval_s,
                strategies_path=self.settings.strategies_path,
                news_url=self.settings.news_url,
            )
        yield Footer()

    def on_mount(self) -> None:
        self._indicator = self.query_one(ConnectionIndicator)
        self._connection = self.query_one(ConnectionPanel)
        self._panels = list(self.query(Panel))
        self._tabs = self.query_one(TabbedContent)
        for panel in self._panels:
            self._tab_of[id(panel)] = panel.query_ancestor(TabPane).id or ""
            for topic in panel.topics:
                self._by_topic.setdefault(topic, []).append(panel)
        self._show_status(self.status)
        self.run_worker(self._run_feed(), name="feed", group="feed")
        if self.settings.news_url:
            self.run_worker(self._news_loop(self.settings.news_url), name="news", group="news")
        self.set_interval(self.settings.tick_s, self._tick)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_thresholds)
        gc.unfreeze()

    # ------------------------------------------------------------------ the feed's listener

    def feed_changes(self, changes: list[Change]) -> None:
        user = [c for c in changes if SPECS[c.topic].scope is Scope.USER]
        if user:
            if not self._unrendered:
                self.post_message(StoreChanged())
            self._unrendered.extend(user)
        if len(user) < len(changes):
            self.post_message(MarketChanged())

    def feed_status(self, status: ConnectionStatus) -> None:
        self.post_message(StatusChanged(status))

    def feed_problem(self, text: str) -> None:
        self.post_message(FeedProblem(text))

    async def _run_feed(self) -> None:
        try:
            await self.feed.run(self.store, self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the boundary of the feed worker: report, never crash
            self.log.error("feed stopped", exc)
            self.feed_problem(f"the connection stopped: {exc}")

    # ------------------------------------------------------------------ routing

    def on_store_changed(self, _: StoreChanged) -> None:
        """Render every change reported since the last batch: one merged change per topic."""
        changes, self._unrendered = self._unrendered, []
        for change in changes:
            if change.source == "live" and change.event is not None:
                self._notify_event(change.event)
            if change.topic == Topic.CIRCUIT_BREAKER_UPDATE:
                breaker = self.store.singleton(Topic.CIRCUIT_BREAKER_UPDATE)
                self._breaker_state = breaker.state if breaker is not None else None
        touched: dict[int, Panel] = {}
        for change in merge_changes(changes):
            for panel in self._by_topic.get(change.topic, ()):
                if panel.ready:
                    if self._on_screen(panel):
                        panel.apply_change(change)
                    touched[id(panel)] = panel
            if change.topic == Topic.SIGNAL_UPDATE:
                self._refresh_pending_modal()
        self._show_freshness(touched.values())

    def on_market_changed(self, _: MarketChanged) -> None:
        market = [p for p in self._panels if isinstance(p, MarketPanel | PositionsPanel)]
        for panel in market:
            if panel.ready and self._on_screen(panel):
                panel.refresh_market()
        self._show_freshness(market)

    def _on_screen(self, panel: Panel) -> bool:
        """True when `panel`'s tab is shown (a hidden panel renders when its tab is shown)."""
        return self._tab_of.get(id(panel)) == self._tabs.active

    def _render_if_shown(self, panel: Panel) -> None:
        """Render `panel` from the store and what it holds, if its tab is shown."""
        if panel.ready and self._on_screen(panel):
            panel.refresh_all()

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        """Render the panels of the tab now shown from the store: while hidden they rendered
        nothing (a tab switch is rare, so every panel of the tab renders, changed or not)."""
        for panel in self._panels:
            if panel.ready and self._tab_of[id(panel)] == message.pane.id:
                panel.refresh_all()

    def on_status_changed(self, message: StatusChanged) -> None:
        self._show_status(message.status)

    def on_feed_problem(self, message: FeedProblem) -> None:
        self._connection.add_problem(message.text)
        self._render_if_shown(self._connection)

    def _tick(self) -> None:
        self._show_status(self.feed.status())

    def _show_status(self, status: ConnectionStatus) -> None:
        self.status = status
        self._indicator.now = self.clock.now_ms()
        self._indicator.status = status
        self._connection.show(status)
        self._render_if_shown(self._connection)
        self._show_freshness()

    def _show_freshness(self, panels: Iterable[Panel] | None = None) -> None:
        """Set the freshness marks of `panels` (all when None; the tick and status do all)."""
        now = self.clock.now_ms()
        for panel in self._panels if panels is None else panels:
            panel.show_freshness(self.status, now)

    def _notify_event(self, event: Any) -> None:
        data = event.data
        if event.type == Topic.TRADE_UPDATE:
            self.notify(
                f"{data.side} {data.quantity:g} {data.symbol} at {fmt_price(data.price)}",
                title="Fill",
            )
        elif event.type == Topic.ORDER_UPDATE and data.type == "STOP_MARKET":
            if data.status == "FILLED":
                self.notify(
                    f"{data.symbol} stop-loss filled at {fmt_price(data.avg_price)}",
                    title="Stop-loss",
                    severity="warning",
                )
        elif event.type == Topic.CIRCUIT_BREAKER_UPDATE:
            if data.state == "tripped" and self._breaker_state != "tripped":
                self.notify(
                    data.reason or "new entries are blocked",
                    title="Circuit breaker tripped",
                    severity="error",
                    timeout=15,
                )

    def _refresh_pending_modal(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, PendingSignalsModal):
                screen.refresh_signals()

    # ------------------------------------------------------------------ commands

    def on_command_requested(self, message: CommandRequested) -> None:
        message.stop()
        self.request_command(message.command, message.args, confirmed=message.confirmed)

    def request_command(
        self, name: str, args: Mapping[str, Any], *, confirmed: bool = False
    ) -> None:
        """Check, confirm when it trades (unless `confirmed` already), then send a command;
        refused while not LIVE."""
        if not self._writable():
            return
        try:
            parse_command_args(name, dict(args))
        except CommandArgsError as exc:
            self.notify(str(exc), title="Not sent", severity="error")
            return
        if name in TRADING_COMMANDS and not confirmed:
            question = f"{name} {' '.join(f'{k}={v}' for k, v in args.items())}?".strip()

            def answered(yes: bool | None) -> None:
                if yes:
                    self._send(name, args)

            self.push_screen(ConfirmModal(question), answered)
        else:
            self._send(name, args)

    def run_palette_entry(self, entry: PaletteEntry) -> None:
        if entry.dialog == "pending_signals":
            self.action_pending()
        elif entry.dialog == "rules":
            if self._writable():
                self.push_screen(RulesModal())
        else:
            self.request_command(entry.command, entry.args)

    def _writable(self) -> bool:
        status = self.feed.status()
        if status.live:
            return True
        self.notify(
            f"The console is read-only while {status.state}: commands need a LIVE connection.",
            title="Read-only",
            severity="warning",
        )
        return False

    def _send(self, name: str, args: Mapping[str, Any]) -> None:
        self.run_worker(self._send_command(name, dict(args)), group="commands")

    async def _send_command(self, name: str, args: dict[str, Any]) -> None:
        try:
            ack = await self.feed.command(name, args)
        except CommandRefused as exc:
            self.notify(str(exc), title=f"{name} not done", severity="warning")
            return
        if ack.ok:
            self.notify(f"{name} accepted", title="Command")
        elif ack.error is not None and ack.error.code == "rate_limited":
            wait_s = (ack.error.retry_after_ms or 0) / 1000
            self.notify(
                f"Too many commands at once: not run. Try again in {wait_s:.1f} s.",
                title=f"{name} rate limited",
                severity="warning",
            )
        else:
            error = ack.error
            reason = f"{error.code}: {error.message}" if error else "refused"
            self.notify(reason, title=f"{name} failed", severity="error")

    # ------------------------------------------------------------------ actions

    def action_group(self, key: str) -> None:
        self.query_one(TabbedContent).active = key

    def action_pending(self) -> None:
        if not any(isinstance(s, PendingSignalsModal) for s in self.screen_stack):
            self.push_screen(PendingSignalsModal(self.store))

    def on_market_panel_symbol_shown(self, message: MarketPanel.SymbolShown) -> None:
        self.feed.show_market(message.symbol)

    def on_signals_panel_pending_requested(self, _: SignalsPanel.PendingRequested) -> None:
        self.action_pending()

    # ------------------------------------------------------------------ news

    async def _news_loop(self, url: str) -> None:
        """Fetch the news every `news_interval_s`; the only poll that runs while LIVE."""
        fetch = getattr(self.feed, "fetch_news", None)
        panel = self.query_one(NewsPanel)
        if fetch is None:
            return
        while True:
            try:
                items = await fetch(url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of a third-party feed is shown, not raised
                panel.show_error(f"news: {exc or type(exc).__name__}", self.clock.now_ms())
            else:
                panel.show_items(items, self.clock.now_ms())
            await asyncio.sleep(self.settings.news_interval_s)


def merge_changes(changes: Iterable[Change]) -> list[Change]:
    """One change per topic, in the order topics first changed, with the keys of all of them;
    a reset when any was one (a reset renders the topic from the store, which already holds
    the later changes too). The merged changes carry no event: notify from the originals."""
    keys: dict[Topic, dict[str, None]] = {}
    source: dict[Topic, Source] = {}
    reset: set[Topic] = set()
    for change in changes:
        keys.setdefault(change.topic, {}).update(dict.fromkeys(change.keys))
        source[change.topic] = change.source
        if change.reset:
            reset.add(change.topic)
    return [
        Change(topic, () if topic in reset else tuple(held), source[topic], reset=topic in reset)
        for topic, held in keys.items()
    ]


def make_app(
    feed: FeedPort,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    settings: ConsoleSettings | None = None,
) -> GinieApp:
    """Build the console around a feed; tests pass a recorded feed and a fixed clock."""
    return GinieApp(
        feed,
        store if store is not None else Store(),
        clock if clock is not None else SystemClock(),
        settings if settings is not None else ConsoleSettings(),
    )
