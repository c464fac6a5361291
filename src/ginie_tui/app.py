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
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ginie_protocol import (
    SPECS,
    TRADING_COMMANDS,
    Ack,
    CommandArgsError,
    Scope,
    Topic,
    parse_command_args,
)
from ginie_tui.alerts import DEFAULT_LIQUIDATION_PCT, Alert, Alerter, AlertKind
from ginie_tui.clock import Clock, SystemClock
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.export import file_name, write_models
from ginie_tui.feed import CommandRefused, FeedPort
from ginie_tui.frames import FramedScreen
from ginie_tui.palette import GinieCommands, PaletteEntry
from ginie_tui.screens.autopilot import AutopilotPane
from ginie_tui.screens.flatten import FlattenModal
from ginie_tui.screens.market import MarketPane
from ginie_tui.screens.modals import ConfirmModal, PendingSignalsModal, RulesModal
from ginie_tui.screens.pnl import PnlPane
from ginie_tui.screens.safety import SafetyPane
from ginie_tui.screens.system import SystemPane
from ginie_tui.screens.ticket import OrderTicket
from ginie_tui.screens.trading import TradingPane
from ginie_tui.store import Change, Source, Store
from ginie_tui.widgets.alerts import AlertsPanel
from ginie_tui.widgets.base import CommandRequested, Panel
from ginie_tui.widgets.connection_details import ConnectionPanel
from ginie_tui.widgets.indicator import ConnectionIndicator
from ginie_tui.widgets.market import MarketPanel
from ginie_tui.widgets.news import NewsPanel
from ginie_tui.widgets.signals import SignalsPanel

NEWS_INTERVAL_S = 180.0

GC_THRESHOLDS = (2_000, 10, 100)
"""Garbage collection while the console runs. Full collections scan every object the process
holds and stopped frames for 40 to 90 ms under a stream of events; so the objects of the
start-up are frozen out of them (`gc.freeze` on mount) and they come 10x less often than
Python's default (700, 10, 10). The young generation is collected every 2,000 objects: at
10,000 a middle-generation pass scanned up to 100,000 survivors and took 25 to 37 ms, at 2,000
it takes 3 to 5 ms."""

ALERT_SECONDS = {"information": 8.0, "warning": 10.0, "error": 15.0}
"""How long an alert's notification stays, by severity (fills: 5 s)."""
FILLS_LISTED = 4
"""Fills one notification lists; the rest of a batch are counted."""

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
    bell: frozenset[AlertKind] = frozenset()
    """Alert kinds that also ring the terminal bell."""
    liquidation_alert_pct: float = DEFAULT_LIQUIDATION_PCT
    """A position whose mark comes this close to its liquidation price (in %) alerts."""
    banner: str = ""
    """Shown beside the connection state (the demo says its market speed)."""


class StoreChanged(Message):
    """User topics changed in the store; the changes wait in the app until this is handled,
    so every change reported while it is queued is rendered with it, as one batch."""


class MarketChanged(Message):
    """Market data changed; like StoreChanged, one is queued at a time and renders every
    market change reported until it is handled (a burst renders once, the latest)."""


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
            Binding(str(n), f"group('{key}')", title, show=False)
            for n, (key, title) in enumerate(GROUPS, start=1)
        ),
        Binding("s", "pending", "Signals"),
        Binding("o", "ticket", "Order"),
        Binding("K", "flatten", "Kill switch"),
        Binding("e", "export", "Export"),
        Binding("q", "quit", "Quit"),
    ]

    status: reactive[ConnectionStatus] = reactive(ConnectionStatus(ConnState.OFFLINE), init=False)
    """The connection status: the indicator is bound to it, and a change reaches the
    connection panel and the alerts (`watch_status`)."""
    now: reactive[int] = reactive(0, init=False)
    """The clock's time when the status was last shown; the indicator's relative times."""

    _indicator: ConnectionIndicator
    _connection: ConnectionPanel
    _tabs: TabbedContent
    _alerts: AlertsPanel
    """The always-visible indicator, the connection details, the tabs and the alerts log
    (found on mount)."""

    def __init__(
        self, feed: FeedPort, store: Store, clock: Clock, settings: ConsoleSettings
    ) -> None:
        super().__init__()
        self.feed = feed
        self.store = store
        self.clock = clock
        self.settings = settings
        self.set_reactive(GinieApp.status, feed.status())
        self._by_topic: dict[Topic, list[Panel]] = {}
        self._panels: list[Panel] = []
        self._tab_of: dict[int, str] = {}
        """The id of each panel's tab, by the panel's id."""
        self.alerter = Alerter(settings.liquidation_alert_pct)
        self._unrendered: list[Change] = []
        self._unrendered_market: list[Change] = []
        """Changes reported by the feed and not yet rendered (one StoreChanged is queued)."""
        self._gc_thresholds = gc.get_threshold()

    # ------------------------------------------------------------------ layout

    def get_default_screen(self) -> Screen[Any]:
        """The screen of the panels, drawn by a frame timer that waits at most one period
        (`ginie_tui.frames`)."""
        return FramedScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield ConnectionIndicator().data_bind(GinieApp.status, GinieApp.now)
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
                alerts=self.alerter.recent,
            )
        yield Footer()

    def on_mount(self) -> None:
        self._indicator = self.query_one(ConnectionIndicator)
        self._connection = self.query_one(ConnectionPanel)
        self._alerts = self.query_one(AlertsPanel)
        self._indicator.banner = self.settings.banner
        self._panels = list(self.query(Panel))
        self._tabs = self.query_one(TabbedContent)
        for panel in self._panels:
            self._tab_of[id(panel)] = panel.query_ancestor(TabPane).id or ""
            for topic in panel.topics:
                self._by_topic.setdefault(topic, []).append(panel)
        self.now = self.clock.now_ms()
        self.watch_status(self.status)
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
        market = [c for c in changes if SPECS[c.topic].scope is Scope.MARKET]
        if user:
            if not self._unrendered:
                self.post_message(StoreChanged())
            self._unrendered.extend(user)
        if market:
            if not self._unrendered_market:
                self.post_message(MarketChanged())
            self._unrendered_market.extend(market)

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
        self._alert(self.alerter.observe(changes, self.store, self.clock.now_ms()))
        self._route(changes)

    def on_market_changed(self, _: MarketChanged) -> None:
        """Render the market changes since the last batch, like user changes; then check the
        positions' distance to liquidation and revalue an open order ticket."""
        changes, self._unrendered_market = self._unrendered_market, []
        self._route(changes)
        self._alert(self.alerter.market(self.store, self.clock.now_ms()))
        for screen in self.screen_stack:
            if isinstance(screen, OrderTicket):
                screen.refresh_preview()

    def _route(self, changes: list[Change]) -> None:
        """Hand each topic's merged change to the panels of that topic: rendered by those on
        screen, marked for freshness on all of them."""
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
        """Show `status` as of now (the tick does, to move the relative times on)."""
        self.now = self.clock.now_ms()
        self.status = status
        self._render_if_shown(self._connection)
        self._show_freshness()

    def watch_status(self, status: ConnectionStatus) -> None:
        self._connection.show(status)
        self._alert(self.alerter.connection(status, self.now))

    def _show_freshness(self, panels: Iterable[Panel] | None = None) -> None:
        """Set the freshness marks of `panels` (all when None; the tick and status do all)."""
        now = self.clock.now_ms()
        for panel in self._panels if panels is None else panels:
            panel.show_freshness(self.status, now)

    def _alert(self, alerts: list[Alert]) -> None:
        """Notify the alerts (the fills of one batch in one notification, shown briefly: a busy
        account fills often), ring the bell once for the kinds the settings ask it for, and
        show them in the alerts log."""
        if not alerts:
            return
        fills = [a for a in alerts if a.kind is AlertKind.FILL]
        if len(fills) > 1:
            lines = [a.message for a in fills[:FILLS_LISTED]]
            if len(fills) > FILLS_LISTED:
                lines.append(f"and {len(fills) - FILLS_LISTED} more")
            self.notify("\n".join(lines), title=f"{len(fills)} fills", timeout=5, markup=False)
        for alert in alerts:
            if alert.kind is AlertKind.FILL and len(fills) > 1:
                continue
            timeout = ALERT_SECONDS[alert.severity] if alert.kind is not AlertKind.FILL else 5
            self.notify(
                alert.message,
                title=alert.title,
                severity=alert.severity,
                timeout=timeout,
                markup=False,
            )
        if any(alert.kind in self.settings.bell for alert in alerts):
            self.bell()
        self._render_if_shown(self._alerts)

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
        if not self.writable():
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
            if self.writable():
                self.push_screen(RulesModal())
        elif entry.dialog == "ticket":
            self.action_ticket()
        elif entry.dialog == "flatten":
            self.action_flatten()
        else:
            self.request_command(entry.command, entry.args)

    def writable(self) -> bool:
        """True while LIVE; otherwise says the console is read-only and returns False."""
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
        ack = await self.send_command(name, args)
        if ack is not None:
            self.report_ack(name, ack)

    async def send_command(self, name: str, args: Mapping[str, Any]) -> Ack | None:
        """Send a command and return its ACK; None (notified) when it was not sent or got no
        answer. For dialogs that show the answer themselves; the checks are theirs."""
        try:
            return await self.feed.command(name, args)
        except CommandRefused as exc:
            self.notify(str(exc), title=f"{name} not done", severity="warning")
            return None

    def report_ack(self, name: str, ack: Ack) -> None:
        """Notify what an ACK says: accepted, rate limited, or refused with its reason."""
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

    def action_ticket(self) -> None:
        """Open the order ticket (while LIVE, and not over another dialog)."""
        if not isinstance(self.screen, ModalScreen) and self.writable():
            self.push_screen(OrderTicket(self.store, self))

    def action_flatten(self) -> None:
        """Open the kill switch's confirmation (while LIVE)."""
        if self.writable() and not any(isinstance(s, FlattenModal) for s in self.screen_stack):
            self.push_screen(FlattenModal(self.store, self))

    def action_export(self) -> None:
        """Write what the focused panel shows (else the first panel of the tab with rows) to a
        CSV file in the current folder, and say which."""
        if isinstance(self.screen, ModalScreen):
            return
        focused = self.focused
        panel = (
            next((a for a in focused.ancestors if isinstance(a, Panel)), None) if focused else None
        )
        if panel is None or not panel.export_items():
            shown = (p for p in self._panels if self._on_screen(p))
            panel = next((p for p in shown if p.export_items()), None)
        if panel is None:
            self.notify("No panel on this tab has rows to export.", title="Export")
            return
        path = Path.cwd() / file_name(panel.TITLE, self.clock.now_ms())
        try:
            count = write_models(panel.export_items(), "csv", path)
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror or exc}", severity="error")
            return
        rows = f"{count} row{'' if count == 1 else 's'}"
        self.notify(f"{rows} of {panel.TITLE} to {path.name}", title="Exported")

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
